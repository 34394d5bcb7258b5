package cmpp_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/cmpp"
	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
)

const (
	account = "901234"
	secret  = "s3cret-shared"
	phone   = "+8613812345678"
)

func gateway(t *testing.T) *providertest.CMPP {
	t.Helper()
	f := providertest.NewCMPP(account, secret)
	t.Cleanup(f.Close)
	return f
}

func dial(t *testing.T, f *providertest.CMPP, edit func(*cmpp.Config)) *cmpp.Client {
	t.Helper()
	cfg := cmpp.Config{Addr: f.Addr(), SourceAddr: account, Secret: secret, SrcID: "10690001", ServiceID: "ICPSMS",
		SubmitTimeout: 2 * time.Second, ReconnectMin: 10 * time.Millisecond, ReconnectMax: 50 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	c, err := cmpp.Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// eventually polls cond until it holds or 5 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAuth(t *testing.T) {
	f := gateway(t)
	c := dial(t, f, nil)
	if f.Connects() != 1 || c.Connects() != 1 {
		t.Fatalf("connects: fake %d, client %d", f.Connects(), c.Connects())
	}
	for _, tc := range []struct {
		name, account, secret string
		code                  uint32
	}{{"bad secret", account, "Zq9-not-it", 3}, {"unknown account", "900000", secret, 2}} {
		_, err := cmpp.Dial(context.Background(), cmpp.Config{Addr: f.Addr(), SourceAddr: tc.account, Secret: tc.secret})
		var e *cmpp.Error
		if !errors.As(err, &e) || e.Class != cmpp.Account || e.Code != tc.code || e.Op != "connect" {
			t.Fatalf("%s: Dial = %v, want an account error with status %d", tc.name, err, tc.code)
		}
		if strings.Contains(err.Error(), tc.secret) {
			t.Fatalf("%s: the error names the secret: %v", tc.name, err)
		}
	}
	// A gateway that answers Status 0 without knowing the secret is refused too.
	impostor := providertest.NewCMPP(account, "other")
	defer impostor.Close()
	impostor.AnyLogin = true
	_, err := cmpp.Dial(context.Background(), cmpp.Config{Addr: impostor.Addr(), SourceAddr: account, Secret: secret})
	if cmpp.ClassOf(err) != cmpp.Account || !strings.Contains(err.Error(), "AuthenticatorISMG") {
		t.Fatalf("impostor: %v", err)
	}
}

func TestSubmitSingleAndLong(t *testing.T) {
	f := gateway(t)
	c := dial(t, f, nil)
	text := "【工信部】您的ICP备案验证码为123456，请勿泄露。"
	ids, err := c.Submit(context.Background(), cmpp.Submission{ID: "m1", Phone: phone, Text: text})
	if err != nil || len(ids) != 1 {
		t.Fatalf("Submit = %v, %v", ids, err)
	}
	long := strings.Repeat("验证码", 30) + "654321" // 96 UCS2 units: 67 + 29
	ids2, err := c.Submit(context.Background(), cmpp.Submission{ID: "m2", Phone: "+8613900001111", Text: long, SrcID: "10690002"})
	if err != nil || len(ids2) != 2 {
		t.Fatalf("Submit long = %v, %v", ids2, err)
	}
	msgs := f.Messages()
	if len(msgs) != 2 {
		t.Fatalf("fake has %d messages", len(msgs))
	}
	if m := msgs[0]; m.Text != text || m.Phone != phone || m.SrcID != "10690001" || m.ServiceID != "ICPSMS" || m.MsgIDs[0] != ids[0] {
		t.Fatalf("single: %+v (ids %v)", m, ids)
	}
	if m := msgs[1]; m.Text != long || m.Phone != "+8613900001111" || m.SrcID != "10690002" ||
		fmt.Sprint(m.MsgIDs) != fmt.Sprint(ids2) {
		t.Fatalf("long: %+v (ids %v)", m, ids2)
	}
	if f.Submits() != 3 {
		t.Fatalf("fake saw %d SUBMITs, want 3", f.Submits())
	}
	if acc := f.Accepted(); len(acc) != 2 || acc[0].Code() != "123456" || acc[1].Code() != "654321" {
		t.Fatalf("Accepted = %+v", acc)
	}
	if got := cmpp.DecodeMsgID(ids[0]).Gateway; got != f.GatewayID {
		t.Fatalf("Msg_Id gateway = %d, want %d", got, f.GatewayID)
	}
}

func TestResultCodes(t *testing.T) {
	f := gateway(t)
	c := dial(t, f, nil)
	ctx := context.Background()
	f.FailNext(1, 8)
	_, err := c.Submit(ctx, cmpp.Submission{Phone: phone, Text: "a"})
	var e *cmpp.Error
	if !errors.As(err, &e) || e.Class != cmpp.Transient || e.Code != 8 {
		t.Fatalf("flow control: %v", err)
	}
	f.FailPhone("+8613700000000", 13)
	_, err = c.Submit(ctx, cmpp.Submission{Phone: "+8613700000000", Text: "a"})
	if cmpp.ClassOf(err) != cmpp.Permanent || strings.Contains(err.Error(), "13700000000") {
		t.Fatalf("bad number: %v", err)
	}
	f.FailNext(1, 7)
	if _, err := c.Submit(ctx, cmpp.Submission{Phone: phone, Text: "a"}); cmpp.ClassOf(err) != cmpp.Account {
		t.Fatalf("service code: %v", err)
	}
	before := f.Submits()
	_, err = c.Submit(ctx, cmpp.Submission{Phone: "+12025550123", Text: "a"})
	if cmpp.ClassOf(err) != cmpp.Permanent || f.Submits() != before || strings.Contains(err.Error(), "2025550123") {
		t.Fatalf("foreign number: %v (sent %d)", err, f.Submits()-before)
	}
	if ids, err := c.Submit(ctx, cmpp.Submission{Phone: phone, Text: "ok"}); err != nil || len(ids) != 1 {
		t.Fatalf("after refusals: %v %v", ids, err)
	}
	if n := len(f.Messages()); n != 1 {
		t.Fatalf("fake accepted %d, want 1", n)
	}
}

// submitAll runs n submits at once and returns their results.
func submitAll(c *cmpp.Client, n int, prefix string) ([][]uint64, []error) {
	ids, errs := make([][]uint64, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ids[i], errs[i] = c.Submit(context.Background(), cmpp.Submission{ID: fmt.Sprint(i), Phone: phone,
				Text: fmt.Sprintf("%s %d", prefix, i)})
		})
	}
	wg.Wait()
	return ids, errs
}

func TestWindow(t *testing.T) {
	f := gateway(t)
	c := dial(t, f, func(cfg *cmpp.Config) { cfg.Window = 4 })
	f.DelayAcks(20 * time.Millisecond)
	_, errs := submitAll(c, 40, "w")
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := f.MaxUnacked(); got != 4 {
		t.Fatalf("most unacknowledged = %d, want the window, 4", got)
	}
}

func TestHeartbeat(t *testing.T) {
	f := gateway(t)
	f.IdleTimeout(150 * time.Millisecond)
	c := dial(t, f, func(cfg *cmpp.Config) { cfg.Heartbeat, cfg.HeartbeatMisses = 30*time.Millisecond, 2 })
	time.Sleep(500 * time.Millisecond) // idle, longer than the gateway's idle timeout
	if c.Connects() != 1 || f.Links() != 1 {
		t.Fatalf("idle link dropped: client connects %d, fake links %d", c.Connects(), f.Links())
	}
	f.Probe()
	eventually(t, "the client answers the gateway's ACTIVE_TEST", func() bool { return f.ProbeAnswers() == 1 })

	f.IdleTimeout(0)
	f.Deaf(true)
	eventually(t, "a deaf gateway is declared dead and dialled again", func() bool { return c.Connects() >= 2 })
	f.Deaf(false)
	if _, err := c.Submit(context.Background(), cmpp.Submission{Phone: phone, Text: "after"}); err != nil {
		t.Fatal(err)
	}
}

func TestDropMidWindow(t *testing.T) {
	f := gateway(t)
	c := dial(t, f, func(cfg *cmpp.Config) { cfg.Window = 16 })
	// The link drops when the 8th submit arrives, none of the 8 acknowledged: half a window in
	// flight.
	f.DelayAcks(time.Second)
	f.DropAfter(8)
	_, errs := submitAll(c, 8, "lost")
	for i, err := range errs {
		if cmpp.ClassOf(err) != cmpp.Transient || err == nil {
			t.Fatalf("submit %d in flight at the drop: %v, want a transient error", i, err)
		}
	}
	f.DelayAcks(0)
	eventually(t, "the client dials again", func() bool { return c.Connects() == 2 && f.Links() == 1 })
	ids, errs := submitAll(c, 10, "kept")
	got := map[uint64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("submit %d after the reconnect: %v", i, err)
		}
		got[ids[i][0]] = true
	}
	acked := f.Acked()
	if len(acked) != 10 || len(got) != 10 {
		t.Fatalf("fake acknowledged %d ids, client got %d", len(acked), len(got))
	}
	for id, n := range acked {
		if n != 1 || !got[id] {
			t.Fatalf("Msg_Id %d acknowledged %d times, returned %v", id, n, got[id])
		}
	}
	for _, m := range f.Messages() {
		if strings.HasPrefix(m.Text, "lost") {
			t.Fatalf("a failed submit was accepted: %q", m.Text)
		}
	}
}

func TestSubmitTimeout(t *testing.T) {
	f := gateway(t)
	c := dial(t, f, func(cfg *cmpp.Config) { cfg.SubmitTimeout = 100 * time.Millisecond })
	f.DelayAcks(time.Second)
	if _, err := c.Submit(context.Background(), cmpp.Submission{Phone: phone, Text: "slow"}); cmpp.ClassOf(err) != cmpp.Transient || err == nil {
		t.Fatalf("unanswered submit: %v", err)
	}
	f.DelayAcks(0)
	eventually(t, "a link that sat on a submit is replaced", func() bool { return c.Connects() == 2 })
	if _, err := c.Submit(context.Background(), cmpp.Submission{Phone: phone, Text: "fast"}); err != nil {
		t.Fatal(err)
	}
}

func TestCallerDeadlineKeepsLink(t *testing.T) {
	f := gateway(t)
	c := dial(t, f, func(cfg *cmpp.Config) { cfg.Window = 1 })
	f.DelayAcks(200 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := c.Submit(ctx, cmpp.Submission{Phone: phone, Text: "impatient"}); cmpp.ClassOf(err) != cmpp.Transient ||
		err == nil || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("caller's deadline: %v", err)
	}
	f.DelayAcks(0)
	// The one window slot comes back with the late answer; the link stays.
	if _, err := c.Submit(context.Background(), cmpp.Submission{Phone: phone, Text: "patient"}); err != nil {
		t.Fatal(err)
	}
	if c.Connects() != 1 || f.MaxUnacked() != 1 {
		t.Fatalf("connects %d, max unacked %d", c.Connects(), f.MaxUnacked())
	}
}
