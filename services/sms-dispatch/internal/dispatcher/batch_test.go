package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/memstore"
)

// batchProvider is a provider.BatchProvider that records each SendBatch call and refuses the
// messages refuse names. When hold is set, its first call waits until hold is closed (after
// recording itself), so that the sends handled meanwhile queue behind it.
type batchProvider struct {
	max    int
	refuse func(id string) error
	hold   chan struct{}

	mu        sync.Mutex
	calls     [][]string
	texts     map[string]string
	deadlines []time.Time // each call's deadline (zero when it had none)
	singles   int         // Send calls (never expected with a batch provider)
}

var _ provider.BatchProvider = (*batchProvider)(nil)

func (*batchProvider) Name() string { return "batch" }

func (b *batchProvider) Send(context.Context, provider.Message) (provider.Accepted, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.singles++
	return provider.Accepted{}, errors.New("Send called on a batch provider")
}

func (b *batchProvider) MaxBatch() int { return b.max }

func (b *batchProvider) SendBatch(ctx context.Context, msgs []provider.Message) []provider.Outcome {
	b.mu.Lock()
	if b.texts == nil {
		b.texts = map[string]string{}
	}
	var ids []string
	errs := make([]provider.Outcome, len(msgs))
	for i, m := range msgs {
		ids = append(ids, m.ID)
		b.texts[m.ID] = m.Text
		errs[i].ProviderIDs = []string{"batch-" + m.ID}
		if b.refuse != nil {
			errs[i].Err = b.refuse(m.ID)
		}
	}
	b.calls = append(b.calls, ids)
	dl, _ := ctx.Deadline()
	b.deadlines = append(b.deadlines, dl)
	first := len(b.calls) == 1
	b.mu.Unlock()
	if first && b.hold != nil {
		<-b.hold
	}
	return errs
}

func (b *batchProvider) sentCalls() [][]string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.calls)
}

func (b *batchProvider) singleSends() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.singles
}

func (b *batchProvider) callDeadlines() []time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.deadlines)
}

// markCounter counts the MarkSentAll statements and their sizes.
type markCounter struct {
	*memstore.Store
	mu    sync.Mutex
	marks []int
}

func (m *markCounter) MarkSentAll(ctx context.Context, ms []domain.Message, provider string, now time.Time, keepText bool) ([]string, error) {
	m.mu.Lock()
	m.marks = append(m.marks, len(ms))
	m.mu.Unlock()
	return m.Store.MarkSentAll(ctx, ms, provider, now, keepText)
}

// marked returns how many messages the MarkSentAll statements carried in all.
func (m *markCounter) marked() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, k := range m.marks {
		n += k
	}
	return n
}

// batchEnv is a memory store with a fake clock and a dispatcher on a batch provider: caps off,
// 4 attempts, send timeout 1s, lease 30s, no jitter, one batch call in flight at a time.
type batchEnv struct {
	st    *markCounter
	clock *clock.Fake
	p     *batchProvider
	d     *dispatcher.Dispatcher
	reg   *prometheus.Registry

	// bg tracks the dispatcher work the test started in the background; cancel stops Run.
	bg          sync.WaitGroup
	cancel      context.CancelFunc
	releaseOnce sync.Once
}

func newBatchEnv(t *testing.T, p *batchProvider, workers int, caps domain.Caps) *batchEnv {
	clk := clock.NewFake(t0)
	e := &batchEnv{st: &markCounter{Store: memstore.New(clk)}, clock: clk, p: p, reg: prometheus.NewRegistry()}
	e.d = &dispatcher.Dispatcher{Store: e.st, Provider: p, Clock: e.clock, Log: zap.NewNop(), Caps: caps, Sender: "12381",
		MaxAttempts: 4, Workers: workers, BatchFlights: 1, SendTimeout: time.Second, Lease: 30 * time.Second, Poll: time.Hour,
		Jitter: func() float64 { return 0 }, Metrics: dispatcher.NewMetrics(e.reg, p.Name())}
	// Registered first, so it runs last: a failed test still lets the held call go and waits for its
	// goroutines, which would otherwise show up in the next test's queuedSends.
	t.Cleanup(func() {
		if e.cancel != nil {
			e.cancel()
		}
		e.release()
		e.bg.Wait()
	})
	return e
}

// create stores a due message to phone, in its own order (never superseded by another).
func (e *batchEnv) create(t *testing.T, id, phone string) {
	t.Helper()
	m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: phone, Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: t0.Add(24 * time.Hour), OrderID: "order-" + id}, "ICP备案", e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, created, err := e.st.Create(context.Background(), m); err != nil || !created {
		t.Fatal(created, err)
	}
}

func (e *batchEnv) get(t *testing.T, id string) domain.Message {
	t.Helper()
	m, err := e.st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *batchEnv) drain(t *testing.T) int {
	t.Helper()
	n, err := e.d.Drain(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// runOnceAsync claims the due messages (one claim, as RunOnce) and handles them in the background;
// the returned func waits for it to end and fails the test on an error.
func (e *batchEnv) runOnceAsync(t *testing.T) (wait func()) {
	done := make(chan error, 1)
	e.bg.Go(func() {
		_, err := e.d.RunOnce(context.Background())
		done <- err
	})
	return func() {
		t.Helper()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("RunOnce did not return")
		}
	}
}

// holdLead stores the message "lead" and handles it in the background; its batch call, the
// provider's first, blocks until release. holdLead returns once that call has begun: with one call
// in flight (BatchFlights 1), the sends handled from then on wait for it (see queuedSends).
func (e *batchEnv) holdLead(t *testing.T) (release, wait func()) {
	t.Helper()
	e.p.hold = make(chan struct{})
	e.create(t, "lead", "13700000000")
	wait = e.runOnceAsync(t)
	eventually(t, func() bool { return len(e.p.sentCalls()) == 1 })
	return e.release, wait
}

// release lets the held first call (holdLead) return.
func (e *batchEnv) release() {
	e.releaseOnce.Do(func() {
		if e.p.hold != nil {
			close(e.p.hold)
		}
	})
}

// run starts the dispatcher's workers; the test's cleanup stops them.
func (e *batchEnv) run() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.bg.Go(func() { _ = e.d.Run(ctx) })
}

// queuedSends counts the sends waiting in a dispatcher's batch group for the call in flight to end:
// goroutines parked in batch.Group.Do (not leading a batch) called by Dispatcher.handle. Once
// counted, a send is in the group's queue, so it goes in the next call (that is what lets the tests
// wait for it instead of sleeping). The goroutines of earlier tests are all gone (batchEnv's cleanup).
func queuedSends() int {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		header, rest, _ := strings.Cut(g, "\n")
		if !strings.Contains(header, "[select") {
			continue
		}
		var funcs []string // the goroutine's frames, innermost first, without the runtime's
		for line := range strings.SplitSeq(rest, "\n") {
			if line != "" && !strings.HasPrefix(line, "\t") && !strings.HasPrefix(line, "runtime.") {
				funcs = append(funcs, line)
			}
		}
		if len(funcs) >= 2 && strings.Contains(funcs[0], "/pkg/batch.(*Group[") && strings.Contains(funcs[0], ").Do(") &&
			strings.Contains(funcs[1], "/internal/dispatcher.(*Dispatcher).handle(") {
			count++
		}
	}
	return count
}

// counter returns icp_sms_messages_total of one result.
func (e *batchEnv) counter(result string) float64 {
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "icp_sms_messages_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return -1
}

// histogram returns the sample count and sum of a histogram of the registry.
func (e *batchEnv) histogram(name string) (uint64, float64) {
	mfs, _ := e.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			h := mf.GetMetric()[0].GetHistogram()
			return h.GetSampleCount(), h.GetSampleSum()
		}
	}
	return 0, 0
}

func sorted(ids []string) string { return fmt.Sprint(slices.Sorted(slices.Values(ids))) }

// Sends that arrive while a batch call is in flight (BatchFlights 1) wait for it and then go
// together in the next call, each marked SENT (and redacted); the call gets the whole send timeout,
// however long its messages waited for it.
func TestBatchCoalescesConcurrentSends(t *testing.T) {
	p := &batchProvider{max: 100}
	e := newBatchEnv(t, p, 6, domain.Caps{}) // the held call's slot and one for each of the 5
	release, waitLead := e.holdLead(t)
	for i := range 5 {
		e.create(t, fmt.Sprintf("m%d", i), fmt.Sprintf("1380000000%d", i))
	}
	waitRest := e.runOnceAsync(t)
	eventually(t, func() bool { return queuedSends() == 5 })
	if calls := p.sentCalls(); len(calls) != 1 {
		t.Fatalf("provider calls %v while the first was in flight, want the 5 sends waiting", calls)
	}
	released := time.Now() // the second call starts after this
	release()
	waitLead()
	waitRest()

	calls := p.sentCalls()
	if len(calls) != 2 || fmt.Sprint(calls[0]) != "[lead]" || sorted(calls[1]) != "[m0 m1 m2 m3 m4]" || p.singleSends() != 0 {
		t.Fatalf("provider calls %v (and %d single sends), want [lead] then one call of m0..m4", calls, p.singleSends())
	}
	if !strings.Contains(p.texts["m3"], "123456") {
		t.Fatalf("text handed to the provider: %q", p.texts["m3"])
	}
	for _, id := range []string{"lead", "m0", "m1", "m2", "m3", "m4"} {
		got := e.get(t, id)
		if got.State != domain.StateSent || got.Provider != "batch" || !got.Redacted || got.Body != "" || got.Attempts != 1 {
			t.Fatalf("%s = %+v, want SENT and redacted", id, got)
		}
	}
	if n := e.st.marked(); n != 6 {
		t.Fatalf("MarkSentAll statements %v carried %d messages, want the 6 acceptances", e.st.marks, n)
	}
	// One timeout for the call, SendTimeout from its start: the leases (30 s) are far from their end.
	if dl := p.callDeadlines()[1]; dl.Before(released.Add(time.Second)) || dl.After(time.Now().Add(time.Second)) {
		t.Fatalf("the second call's deadline is %v after the first call ended, want the send timeout (1s) from its start",
			dl.Sub(released))
	}
	if n, sum := e.histogram("icp_sms_send_batch_messages"); n != 2 || sum != 6 {
		t.Fatalf("batch size histogram: %d calls, %v messages; want 2 calls, 6 messages", n, sum)
	}
	if n, _ := e.histogram("icp_sms_send_seconds"); n != 2 {
		t.Fatalf("send duration histogram: %d calls, want 2", n)
	}
	if sent := e.counter(dispatcher.ResultSent); sent != 6 {
		t.Fatalf("sent counter = %v, want 6", sent)
	}
}

// The sends waiting for a call go in calls of at most the provider's MaxBatch, oldest first.
// A call ends before the first lease of its messages does: messages that waited until their claims
// are nearly over get a call that short, so no other worker can reclaim one mid-call.
func TestBatchCallEndsBeforeTheLeases(t *testing.T) {
	p := &batchProvider{max: 100}
	e := newBatchEnv(t, p, 3, domain.Caps{})
	release, waitLead := e.holdLead(t)
	e.create(t, "m0", "13800000000")
	e.create(t, "m1", "13800000001")
	waitRest := e.runOnceAsync(t)
	eventually(t, func() bool { return queuedSends() == 2 })
	e.clock.Advance(29*time.Second + 500*time.Millisecond) // the claims (30 s) have 0.5 s left
	released := time.Now()
	release()
	waitLead()
	waitRest()
	if calls := p.sentCalls(); len(calls) != 2 || sorted(calls[1]) != "[m0 m1]" {
		t.Fatalf("provider calls %v, want [lead] then [m0 m1]", calls)
	}
	if dl := p.callDeadlines()[1]; dl.After(time.Now().Add(500*time.Millisecond)) || dl.Before(released.Add(500*time.Millisecond)) {
		t.Fatalf("the call's deadline is %v after the release, want the 0.5 s left of the leases", dl.Sub(released))
	}
}

func TestBatchCallsAtMostMaxBatch(t *testing.T) {
	p := &batchProvider{max: 2}
	e := newBatchEnv(t, p, 6, domain.Caps{})
	release, waitLead := e.holdLead(t)
	for i := range 5 {
		e.create(t, fmt.Sprintf("m%d", i), fmt.Sprintf("1380000000%d", i))
	}
	waitRest := e.runOnceAsync(t)
	eventually(t, func() bool { return queuedSends() == 5 })
	release()
	waitLead()
	waitRest()

	calls := p.sentCalls()
	var sizes []int
	var later []string
	for _, c := range calls[1:] {
		sizes = append(sizes, len(c))
		later = append(later, c...)
	}
	if fmt.Sprint(calls[0]) != "[lead]" || fmt.Sprint(sizes) != "[2 2 1]" || sorted(later) != "[m0 m1 m2 m3 m4]" {
		t.Fatalf("provider calls %v, want [lead] then m0..m4 in calls of 2, 2 and 1", calls)
	}
	for i := range 5 {
		if got := e.get(t, fmt.Sprintf("m%d", i)); got.State != domain.StateSent {
			t.Fatalf("m%d = %s", i, got.State)
		}
	}
	if n, sum := e.histogram("icp_sms_send_batch_messages"); n != 4 || sum != 6 {
		t.Fatalf("batch size histogram: %d calls, %v messages; want 4 calls, 6 messages", n, sum)
	}
}

// A lone message, with no call in flight, goes at once in a call of its own: nothing waits for
// company (the fake clock never moves here, so a wait on it would never end).
func TestBatchLoneMessageGoesAtOnce(t *testing.T) {
	p := &batchProvider{max: 100}
	e := newBatchEnv(t, p, 4, domain.Caps{})
	e.create(t, "m0", "13800000000")
	start := time.Now()
	if ok, err := e.d.RunOnce(context.Background()); !ok || err != nil {
		t.Fatalf("RunOnce = %v, %v", ok, err)
	}
	end := time.Now()
	if calls := fmt.Sprint(p.sentCalls()); calls != "[[m0]]" || p.singleSends() != 0 {
		t.Fatalf("provider calls %s (and %d single sends), want one call of m0", calls, p.singleSends())
	}
	if got := e.get(t, "m0"); got.State != domain.StateSent || !got.Redacted {
		t.Fatalf("m0 = %+v, want SENT", got)
	}
	if dl := p.callDeadlines()[0]; dl.Before(start.Add(time.Second)) || dl.After(end.Add(time.Second)) {
		t.Fatalf("the call's deadline is %v after RunOnce returned, want the send timeout from the decision", dl.Sub(end))
	}
	if fmt.Sprint(e.st.marks) != "[1]" {
		t.Fatalf("MarkSentAll statements of sizes %v, want one of 1", e.st.marks)
	}
	if n, sum := e.histogram("icp_sms_send_batch_messages"); n != 1 || sum != 1 {
		t.Fatalf("batch size histogram: %d calls, %v messages", n, sum)
	}
}

// Messages SendMessage handed over (Reserve/Handoff) go through the batch provider too, and those
// handed over while a call is in flight go together in the next one.
func TestBatchHandedMessagesGoTogether(t *testing.T) {
	p := &batchProvider{max: 100, hold: make(chan struct{})}
	e := newBatchEnv(t, p, 4, domain.Caps{}) // the held call's slot and one for each of the 3
	hand := func(id, phone string) {
		t.Helper()
		until, ok := e.d.Reserve(t0)
		if !ok {
			t.Fatal("Reserve refused")
		}
		m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: phone,
			Template: domain.TemplateVerificationCode, Params: map[string]string{"code": "123456"}, ExpireAt: t0.Add(time.Hour)}, "ICP备案", t0)
		if err != nil {
			t.Fatal(err)
		}
		m.Attempts, m.NextAttempt = 1, until
		stored, _, err := e.st.Create(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		e.d.Handoff(stored)
	}
	e.run()
	hand("h0", "13800000000")
	eventually(t, func() bool { return len(p.sentCalls()) == 1 })
	for i := 1; i <= 3; i++ {
		hand(fmt.Sprintf("h%d", i), fmt.Sprintf("1380000000%d", i))
	}
	eventually(t, func() bool { return queuedSends() == 3 })
	e.release()
	eventually(t, func() bool {
		for i := range 4 {
			if e.get(t, fmt.Sprintf("h%d", i)).State != domain.StateSent {
				return false
			}
		}
		return true
	})
	if calls := p.sentCalls(); len(calls) != 2 || fmt.Sprint(calls[0]) != "[h0]" || sorted(calls[1]) != "[h1 h2 h3]" || p.singleSends() != 0 {
		t.Fatalf("provider calls %v (and %d single sends), want [h0], then h1..h3 in one call", calls, p.singleSends())
	}
}
