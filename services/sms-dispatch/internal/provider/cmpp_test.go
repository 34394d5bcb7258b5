package provider_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/cmpp"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
)

const (
	cmppAccount = "901234"
	cmppSecret  = "s3cret-shared"
)

// receiptLog stands in for the store in this unit test of the adapter: it keeps what RecordReceipts
// got, and can refuse the first few calls.
type receiptLog struct {
	mu     sync.Mutex
	got    []domain.Receipt
	refuse int
}

func (l *receiptLog) RecordReceipts(_ context.Context, rs []domain.Receipt) ([]domain.ReceiptOutcome, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refuse > 0 {
		l.refuse--
		return nil, errors.New("store down")
	}
	l.got = append(l.got, rs...)
	outs := make([]domain.ReceiptOutcome, len(rs))
	for i := range outs {
		outs[i] = domain.ReceiptApplied
	}
	return outs, nil
}

func (l *receiptLog) all() []domain.Receipt {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]domain.Receipt(nil), l.got...)
}

func cmppProvider(t *testing.T, edit func(*cmpp.Config)) (*provider.CMPP, *providertest.CMPP, *receiptLog) {
	t.Helper()
	f := providertest.NewCMPP(cmppAccount, cmppSecret)
	t.Cleanup(f.Close)
	rec := &receiptLog{}
	p := &provider.CMPP{Config: cmpp.Config{Addr: f.Addr(), SourceAddr: cmppAccount, Secret: cmppSecret, SrcID: "10690001",
		ServiceID: "ICPSMS", SubmitTimeout: 2 * time.Second, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond},
		Receipts: rec}
	if edit != nil {
		edit(&p.Config)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, f, rec
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func decimal(ids []uint64) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = strconv.FormatUint(id, 10)
	}
	return out
}

func TestCMPPSendsTextAndReturnsMsgIDs(t *testing.T) {
	p, f, _ := cmppProvider(t, nil)
	if p.Name() != "cmpp" {
		t.Fatalf("name %q", p.Name())
	}
	ctx := context.Background()
	short := message("m-1")
	long := message("m-2")
	long.Text = strings.Repeat("您的短信核验码", 12) // 84 characters: two UCS2 segments
	for _, m := range []provider.Message{short, long} {
		if _, err := p.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	got := f.Messages()
	if len(got) != 2 || got[0].Text != short.Text || got[0].Phone != testPhone || got[1].Text != long.Text ||
		got[0].SrcID != "10690001" || got[0].ServiceID != "ICPSMS" {
		t.Fatalf("gateway got %+v", got)
	}
	// The ids answered are the gateway's Msg_Ids, in segment order.
	acc, err := p.Send(ctx, long)
	if err != nil {
		t.Fatal(err)
	}
	last := f.Messages()[2]
	if fmt.Sprint(acc.ProviderIDs) != fmt.Sprint(decimal(last.MsgIDs)) || len(acc.ProviderIDs) != 2 {
		t.Fatalf("ProviderIDs %v, gateway's Msg_Ids %v", acc.ProviderIDs, last.MsgIDs)
	}
}

func TestCMPPClasses(t *testing.T) {
	p, f, _ := cmppProvider(t, func(c *cmpp.Config) { c.ResultClasses = map[uint32]cmpp.Class{77: cmpp.PerNumberLimit} })
	ctx := context.Background()
	for _, tc := range []struct {
		result uint32
		want   provider.Class
	}{{8, provider.Transient}, {77, provider.PerNumberLimit}, {10, provider.Account}, {13, provider.Permanent}, {99, provider.Transient}} {
		f.FailNext(1, tc.result)
		_, err := p.Send(ctx, message("m"))
		var e *provider.Error
		if !errors.As(err, &e) || e.Class != tc.want || e.Provider != "cmpp" || !strings.Contains(e.Code, strconv.Itoa(int(tc.result))) {
			t.Fatalf("Result %d: %v, want class %s", tc.result, err, tc.want)
		}
		if strings.Contains(err.Error(), testPhone[3:]) {
			t.Fatalf("the error names the phone: %v", err)
		}
	}
	m := message("m")
	m.Phone = "+14155550123"
	if _, err := p.Send(ctx, m); provider.ClassOf(err) != provider.Permanent {
		t.Fatalf("foreign number: %v", err)
	}
	if _, err := p.Send(ctx, message("m")); err != nil {
		t.Fatalf("after the refusals: %v", err)
	}

	// A refused login is the account's; the next send dials again.
	bad, _, _ := cmppProvider(t, func(c *cmpp.Config) { c.Secret = "Zq9-not-it" })
	_, err := bad.Send(ctx, message("m"))
	if provider.ClassOf(err) != provider.Account || strings.Contains(err.Error(), "Zq9-not-it") {
		t.Fatalf("bad secret: %v", err)
	}
}

// counter counts receipts by provider/result, as icp_sms_receipts_total does.
type counter struct {
	mu  sync.Mutex
	got map[string]int
}

func (c *counter) Receipt(provider, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got[provider+"/"+result]++
}

func (c *counter) of(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.got[key]
}

func TestCMPPReportsReachTheStore(t *testing.T) {
	p, f, rec := cmppProvider(t, nil)
	count := &counter{got: map[string]int{}}
	p.Counter = count
	ctx := context.Background()
	one, err := p.Send(ctx, message("m-1"))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one receipt", func() bool { return len(rec.all()) == 1 })
	if r := rec.all()[0]; r.Provider != "cmpp" || r.ProviderID != one.ProviderIDs[0] || !r.Delivered || r.Code != "DELIVRD" || r.At.IsZero() {
		t.Fatalf("receipt %+v", r)
	}

	// A long text: held, released newest first and twice each; DELIVERED once every segment is.
	f.HoldReports()
	long := message("m-2")
	long.Text = strings.Repeat("您的短信核验码", 12)
	two, err := p.Send(ctx, long)
	if err != nil || len(two.ProviderIDs) != 2 {
		t.Fatalf("%v %v", two, err)
	}
	f.ReleaseReports(true, true)
	waitFor(t, "the long text's receipt", func() bool { return len(rec.all()) >= 2 })
	time.Sleep(50 * time.Millisecond) // the duplicates: none may add a receipt for a pending segment
	got := rec.all()[1:]
	if got[0].ProviderID != two.ProviderIDs[0] || !got[0].Delivered {
		t.Fatalf("long text receipts %+v (ids %v)", got, two.ProviderIDs)
	}

	// Any undelivered segment makes the message UNDELIVERED, and the store is retried.
	rec.mu.Lock()
	rec.refuse = 2
	rec.mu.Unlock()
	f.ReportStat(testPhone, "UNDELIV")
	before := len(rec.all())
	if _, err := p.Send(ctx, long); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an undelivered receipt", func() bool { return len(rec.all()) > before })
	for _, r := range rec.all()[before:] {
		if r.Delivered || r.Code != "UNDELIV" {
			t.Fatalf("receipt %+v", r)
		}
	}
	// Each recorded report is counted once with the store's outcome; the refused tries are not.
	// (counted just after the store answers: wait for the last one; a counted refusal would never let
	// the two meet, and would show as another result)
	waitFor(t, "every report counted", func() bool { return count.of("cmpp/applied") == len(rec.all()) })
	count.mu.Lock()
	defer count.mu.Unlock()
	if len(count.got) != 1 {
		t.Fatalf("counted %v, want only cmpp/applied", count.got)
	}
}

// A link dropped mid-window: the submits it left unanswered fail transient and, sent again, reach
// the gateway once each.
func TestCMPPDropMidWindowLosesNothing(t *testing.T) {
	p, f, _ := cmppProvider(t, func(c *cmpp.Config) { c.Window = 8 })
	f.DelayAcks(20 * time.Millisecond)
	f.DropAfter(5)
	ctx := context.Background()
	const n = 12
	var wg sync.WaitGroup
	failures := make(chan error, 2000)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := message(fmt.Sprintf("m-%d", i))
			m.Text = fmt.Sprintf("text %d", i)
			for try := 0; ; try++ {
				_, err := p.Send(ctx, m)
				if err == nil {
					return
				}
				if provider.ClassOf(err) != provider.Transient || try > 100 {
					failures <- err
					return
				}
				failures <- nil
				time.Sleep(10 * time.Millisecond) // the dispatcher's backoff
			}
		}()
	}
	wg.Wait()
	close(failures)
	retried := 0
	for err := range failures {
		if err != nil {
			t.Fatal(err)
		}
		retried++
	}
	seen := map[string]int{}
	for _, m := range f.Messages() {
		seen[m.Text]++
	}
	for i := range n {
		if c := seen[fmt.Sprintf("text %d", i)]; c != 1 {
			t.Fatalf("text %d reached the gateway %d times (all: %v)", i, c, seen)
		}
	}
	if retried == 0 || f.Connects() < 2 {
		t.Fatalf("no drop happened: %d retries, %d connects", retried, f.Connects())
	}
}

// BenchmarkCMPPSend sends one-segment texts from many goroutines through the adapter to a loopback
// fake that reports each; msgs/s counts accepted sends, receipts/s the reports recorded meanwhile.
func BenchmarkCMPPSend(b *testing.B) {
	f := providertest.NewCMPP(cmppAccount, cmppSecret)
	defer f.Close()
	rec := &receiptLog{}
	p := &provider.CMPP{Config: cmpp.Config{Addr: f.Addr(), SourceAddr: cmppAccount, Secret: cmppSecret, SrcID: "10690001",
		Conns: 2, Window: 16}, Receipts: rec}
	defer func() { _ = p.Close() }()
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := p.Send(context.Background(), message("m")); err != nil {
				b.Error(err)
				return
			}
		}
	})
	secs := time.Since(start).Seconds()
	b.ReportMetric(float64(b.N)/secs, "msgs/s")
	b.ReportMetric(float64(len(rec.all()))/secs, "receipts/s")
}
