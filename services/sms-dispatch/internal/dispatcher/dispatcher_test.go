package dispatcher_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store"
)

var t0 = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)

// fakeProvider records every accepted send and fails the first failFirst calls per message.
type fakeProvider struct {
	mu        sync.Mutex
	failFirst int
	calls     map[string]int
	sent      map[string][]provider.Message
	// onSend, when set, runs inside Send (to inspect the store while the provider "has" the message).
	onSend func(provider.Message)
}

func newFake(failFirst int) *fakeProvider {
	return &fakeProvider{failFirst: failFirst, calls: map[string]int{}, sent: map[string][]provider.Message{}}
}

func (*fakeProvider) Name() string { return "fake" }

func (f *fakeProvider) Send(_ context.Context, m provider.Message) error {
	if f.onSend != nil {
		f.onSend(m)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[m.ID]++
	if f.calls[m.ID] <= f.failFirst {
		return errors.New("webhook: gateway answered HTTP 500")
	}
	f.sent[m.ID] = append(f.sent[m.ID], m)
	return nil
}

func (f *fakeProvider) sentCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent[id])
}

func (f *fakeProvider) totalSent() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.sent {
		n += len(s)
	}
	return n
}

type env struct {
	store *store.Store
	clock *clock.Fake
	prov  *fakeProvider
}

func setup(t *testing.T, failFirst int) env {
	t.Helper()
	return env{store: store.New(pgtest.NewSchema(t, "smsd", store.Migrations)), clock: clock.NewFake(t0), prov: newFake(failFirst)}
}

func (e env) dispatcher(workers int) *dispatcher.Dispatcher {
	return &dispatcher.Dispatcher{Store: e.store, Provider: e.prov, Clock: e.clock, Log: zap.NewNop(), Caps: domain.DefaultCaps,
		Sender: "12381", MaxAttempts: 4, Workers: workers, SendTimeout: time.Second, Lease: 30 * time.Second,
		Poll: 5 * time.Millisecond, Jitter: func() float64 { return 0 }}
}

func (e env) create(t *testing.T, id, phone string, expire time.Duration) {
	t.Helper()
	m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: phone, Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: e.clock.Now().Add(expire)}, "ICP备案", e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.store.Create(context.Background(), m); err != nil {
		t.Fatal(err)
	}
}

func (e env) get(t *testing.T, id string) domain.Message {
	t.Helper()
	m, err := e.store.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestStoredBeforeSendAndRedactedAfter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, 0)
	e.create(t, "m1", "13812345678", 24*time.Hour)
	var during domain.Message
	e.prov.onSend = func(provider.Message) { during = e.get(t, "m1") }
	d := e.dispatcher(1)
	if n, err := d.Drain(ctx); err != nil || n != 1 {
		t.Fatalf("Drain = %d, %v", n, err)
	}
	if during.State != domain.StateQueued || during.Body == "" || during.Redacted {
		t.Fatalf("while the provider had it the stored message was %+v", during)
	}
	sent := e.prov.sent["m1"][0]
	if sent.Text != "【ICP备案】您的短信核验码为123456，请于2026-11-27 10:00前登录备案管理系统完成核验。" || sent.Phone != "+8613812345678" || sent.Sender != "12381" {
		t.Fatalf("provider got %+v", sent)
	}
	got := e.get(t, "m1")
	if got.State != domain.StateSent || !got.Redacted || got.Body != "" || len(got.Params) != 0 || got.Provider != "fake" || got.Attempts != 1 {
		t.Fatalf("after send: %+v", got)
	}
}

func TestRepeatSendMessageDoesNotSendTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, 0)
	d := e.dispatcher(1)
	e.create(t, "m1", "13812345678", 24*time.Hour)
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	e.create(t, "m1", "13812345678", 24*time.Hour) // the caller's outbox redelivers
	e.clock.Advance(time.Hour)
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := e.prov.sentCount("m1"); n != 1 {
		t.Fatalf("sent %d times", n)
	}
}

func TestProviderFailureRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, 2)
	d := e.dispatcher(1)
	e.create(t, "m1", "13812345678", 24*time.Hour)
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	got := e.get(t, "m1")
	if got.State != domain.StateQueued || got.Attempts != 1 || !got.NextAttempt.Equal(t0.Add(time.Second)) ||
		got.LastError != "webhook: gateway answered HTTP 500" || got.Body == "" {
		t.Fatalf("after 1st failure: %+v", got)
	}
	e.clock.Advance(999 * time.Millisecond)
	if n, _ := d.Drain(ctx); n != 0 {
		t.Fatal("retried before the backoff")
	}
	e.clock.Advance(time.Millisecond)
	_, _ = d.Drain(ctx)
	got = e.get(t, "m1")
	if got.Attempts != 2 || !got.NextAttempt.Equal(e.clock.Now().Add(2*time.Second)) {
		t.Fatalf("after 2nd failure: %+v", got)
	}
	// The failed tries gave their cap slots back, so the retry is not held by the 1-per-minute cap.
	e.clock.Advance(2 * time.Second)
	_, _ = d.Drain(ctx)
	got = e.get(t, "m1")
	if got.State != domain.StateSent || got.Attempts != 3 || !got.Redacted || got.Body != "" || e.prov.sentCount("m1") != 1 {
		t.Fatalf("after success: %+v", got)
	}
}

func TestGivesUpAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, 100)
	d := e.dispatcher(1)
	e.create(t, "m1", "13812345678", 24*time.Hour)
	for range 10 {
		_, _ = d.Drain(ctx)
		e.clock.Advance(time.Minute)
	}
	got := e.get(t, "m1")
	if got.State != domain.StateFailed || got.Attempts != 4 || !got.Redacted || got.Body != "" || e.prov.calls["m1"] != 4 {
		t.Fatalf("after max attempts: %+v, calls %d", got, e.prov.calls["m1"])
	}
}

func TestExpiredFails(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	e.create(t, "m1", "13812345678", time.Minute)
	e.clock.Advance(time.Minute)
	_, _ = e.dispatcher(1).Drain(context.Background())
	got := e.get(t, "m1")
	if got.State != domain.StateFailed || got.LastError != domain.ErrorExpired || e.prov.totalSent() != 0 {
		t.Fatalf("expired message: %+v", got)
	}
}

func TestCapReschedulesThenRateLimits(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, 0)
	d := e.dispatcher(1)
	e.create(t, "a", "13812345678", 24*time.Hour)
	e.create(t, "b", "13812345678", 24*time.Hour)
	e.create(t, "c", "13812345678", 30*time.Second) // cannot wait a minute
	_, _ = d.Drain(ctx)
	if e.prov.totalSent() != 1 {
		t.Fatalf("sent %d in the first minute", e.prov.totalSent())
	}
	var waiting, limited int
	for _, id := range []string{"a", "b", "c"} {
		m := e.get(t, id)
		switch {
		case m.State == domain.StateQueued:
			waiting++
			if !m.NextAttempt.Equal(t0.Add(time.Minute)) || m.Attempts != 0 {
				t.Fatalf("waiting message %+v", m)
			}
		case m.State == domain.StateFailed:
			limited++
			if m.LastError != domain.ErrorRateLimited {
				t.Fatalf("failed message %+v", m)
			}
		}
	}
	if limited > 1 || waiting+limited != 2 {
		t.Fatalf("waiting %d, rate limited %d", waiting, limited)
	}
	e.clock.Advance(time.Minute)
	_, _ = d.Drain(ctx)
	e.clock.Advance(time.Minute)
	_, _ = d.Drain(ctx)
	if e.prov.totalSent()+limited != 3 {
		t.Fatalf("sent %d, limited %d", e.prov.totalSent(), limited)
	}
}

// TestTwoDispatchersSendEachOnce: two dispatchers (as two replicas) with 4 workers each on one
// database; every message goes out exactly once.
func TestTwoDispatchersSendEachOnce(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	const n = 120
	for i := range n {
		e.create(t, fmt.Sprintf("m-%03d", i), fmt.Sprintf("+86138%08d", i), 24*time.Hour)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		d := e.dispatcher(4)
		wg.Go(func() { _ = d.Run(ctx) })
	}
	waitFor(t, func() bool { return e.prov.totalSent() >= n })
	cancel()
	wg.Wait()
	for i := range n {
		id := fmt.Sprintf("m-%03d", i)
		if c := e.prov.sentCount(id); c != 1 {
			t.Fatalf("%s sent %d times", id, c)
		}
		if m := e.get(t, id); m.State != domain.StateSent {
			t.Fatalf("%s is %s", id, m.State)
		}
	}
}

// TestCapHoldsWithTwoDispatchers: many messages to one phone, two dispatchers racing: only one
// SMS goes out in the minute; after the clock moves a minute, one more.
func TestCapHoldsWithTwoDispatchers(t *testing.T) {
	t.Parallel()
	e := setup(t, 0)
	const n = 8
	for i := range n {
		e.create(t, fmt.Sprintf("m-%d", i), "13812345678", 24*time.Hour)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		d := e.dispatcher(4)
		wg.Go(func() { _ = d.Run(ctx) })
	}
	allSettled := func(wantSent int) func() bool {
		return func() bool {
			if e.prov.totalSent() != wantSent {
				return false
			}
			msgs, _, err := e.store.List(context.Background(), "", 100, "")
			if err != nil {
				return false
			}
			for _, m := range msgs {
				if m.State == domain.StateQueued && !m.NextAttempt.After(e.clock.Now()) {
					return false // still due: a worker has yet to look at it
				}
			}
			return true
		}
	}
	waitFor(t, allSettled(1))
	e.clock.Advance(time.Minute)
	waitFor(t, allSettled(2))
	cancel()
	wg.Wait()
	if got := e.prov.totalSent(); got != 2 {
		t.Fatalf("sent %d, want 2 (cap 1 per minute)", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// crashingStore fails the first MarkSent, as a process dying between the provider's acceptance and
// the SENT update would.
type crashingStore struct {
	*store.Store
	mu      sync.Mutex
	crashed bool
}

func (c *crashingStore) MarkSent(ctx context.Context, id, provider string, now time.Time) (bool, error) {
	c.mu.Lock()
	first := !c.crashed
	c.crashed = true
	c.mu.Unlock()
	if first {
		return false, errors.New("connection lost")
	}
	return c.Store.MarkSent(ctx, id, provider, now)
}

// TestCrashAfterAcceptanceResendsWithSameID is the documented at-least-once edge: the message
// comes back after its lease and goes out again with the same message id (the gateway's
// Idempotency-Key); its own earlier cap reservation does not hold it back.
func TestCrashAfterAcceptanceResendsWithSameID(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t, 0)
	d := e.dispatcher(1)
	d.Store = &crashingStore{Store: e.store}
	e.create(t, "m1", "13812345678", 24*time.Hour)
	if _, err := d.Drain(ctx); err == nil {
		t.Fatal("expected the simulated crash")
	}
	if m := e.get(t, "m1"); m.State != domain.StateQueued || m.Body == "" {
		t.Fatalf("after crash: %+v", m)
	}
	e.clock.Advance(29 * time.Second)
	if n, _ := d.Drain(ctx); n != 0 {
		t.Fatal("claimed during the lease")
	}
	e.clock.Advance(time.Second) // lease (30s) over; still inside the 1-per-minute window
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	sends := e.prov.sent["m1"]
	if len(sends) != 2 || sends[0].ID != sends[1].ID {
		t.Fatalf("sends = %+v", sends)
	}
	if m := e.get(t, "m1"); m.State != domain.StateSent || !m.Redacted {
		t.Fatalf("after resend: %+v", m)
	}
}
