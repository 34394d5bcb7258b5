package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

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

// Send accepts with the provider id "pid-<message id>-<n>" (n counts the message's sends).
func (f *fakeProvider) Send(_ context.Context, m provider.Message) (provider.Accepted, error) {
	if f.onSend != nil {
		f.onSend(m)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[m.ID]++
	if f.calls[m.ID] <= f.failFirst {
		return provider.Accepted{}, errors.New("webhook: gateway answered HTTP 500")
	}
	f.sent[m.ID] = append(f.sent[m.ID], m)
	return provider.Accepted{ProviderIDs: []string{fmt.Sprintf("pid-%s-%d", m.ID, len(f.sent[m.ID]))}}, nil
}

func (f *fakeProvider) sentCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.sent[id])
}

func (f *fakeProvider) callCount(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
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

// dispatcher returns a dispatcher on the engine: lease 30s, send timeout 1s, no jitter.
func (e *env) dispatcher(p *fakeProvider, workers int) *dispatcher.Dispatcher {
	return &dispatcher.Dispatcher{Store: e.Store, Provider: p, Clock: e.clock, Log: zap.NewNop(), Caps: domain.DefaultCaps,
		Sender: "12381", MaxAttempts: 4, Workers: workers, SendTimeout: time.Second, Lease: 30 * time.Second,
		Poll: 5 * time.Millisecond, Jitter: func() float64 { return 0 }}
}

func testStoredBeforeSendAndRedactedAfter(t *testing.T, e *env) {
	want := "【ICP备案】您的短信核验码为123456，请于2026-11-27 10:00前登录备案管理系统完成核验。"
	if m := e.message(t, "x", "13812345678", 24*time.Hour); m.Body != want {
		t.Fatalf("text = %q, want %q", m.Body, want)
	}
	for _, keep := range []bool{false, true} {
		id := fmt.Sprintf("m-keep-%v", keep)
		m := e.message(t, id, "13812345678", 24*time.Hour)
		m.OrderID = id
		e.createMsg(t, m)
		p := newFake(0)
		var during domain.Message
		p.onSend = func(provider.Message) { during = e.get(t, id) }
		d := e.dispatcher(p, 1)
		d.KeepText = keep
		if n, err := d.Drain(ctx); err != nil || n != 1 {
			t.Fatalf("Drain = %d, %v", n, err)
		}
		if during.State != domain.StateQueued || during.Body == "" || during.Redacted {
			t.Fatalf("while the provider had it the stored message was %+v", during)
		}
		sent := p.sent[id][0]
		if sent.Text != m.Body || sent.Phone != "+8613812345678" || sent.Sender != "12381" {
			t.Fatalf("provider got %+v", sent)
		}
		got := e.get(t, id)
		if got.State != domain.StateSent || got.Provider != "fake" || got.Attempts != 1 {
			t.Fatalf("after send: %+v", got)
		}
		// Only development mode (KeepText) keeps the text after the provider accepted it.
		if got.Redacted == keep || (got.Body == sent.Text) != keep || (got.Params["code"] == "123456") != keep {
			t.Fatalf("after send with KeepText=%v: %+v", keep, got)
		}
		e.clock.Advance(time.Minute) // the next message to the phone is not held by the cap
	}
}

func testRepeatSendMessageDoesNotSendTwice(t *testing.T, e *env) {
	p := newFake(0)
	d := e.dispatcher(p, 1)
	e.create(t, "m1", "13812345678", 24*time.Hour)
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	e.create(t, "m1", "13812345678", 24*time.Hour) // the caller's outbox redelivers
	e.clock.Advance(time.Hour)
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if n := p.sentCount("m1"); n != 1 {
		t.Fatalf("sent %d times", n)
	}
}

func testProviderFailureRetriedWithBackoff(t *testing.T, e *env) {
	p := newFake(2)
	d := e.dispatcher(p, 1)
	e.create(t, "m1", "13812345678", 24*time.Hour)
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	got := e.get(t, "m1")
	if got.State != domain.StateQueued || got.Attempts != 1 || !got.NextAttempt.Equal(T0.Add(time.Second)) ||
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
	if got.State != domain.StateSent || got.Attempts != 3 || !got.Redacted || got.Body != "" || p.sentCount("m1") != 1 {
		t.Fatalf("after success: %+v", got)
	}
}

func testGivesUpAfterMaxAttempts(t *testing.T, e *env) {
	p := newFake(100)
	d := e.dispatcher(p, 1)
	e.create(t, "m1", "13812345678", 24*time.Hour)
	for range 10 {
		_, _ = d.Drain(ctx)
		e.clock.Advance(time.Minute)
	}
	got := e.get(t, "m1")
	if got.State != domain.StateFailed || got.Attempts != 4 || !got.Redacted || got.Body != "" || p.callCount("m1") != 4 {
		t.Fatalf("after max attempts: %+v, calls %d", got, p.callCount("m1"))
	}
}

func testExpiredFails(t *testing.T, e *env) {
	p := newFake(0)
	e.create(t, "m1", "13812345678", time.Minute)
	e.clock.Advance(time.Minute)
	_, _ = e.dispatcher(p, 1).Drain(ctx)
	got := e.get(t, "m1")
	if got.State != domain.StateFailed || got.LastError != domain.ErrorExpired || !got.Redacted || p.totalSent() != 0 {
		t.Fatalf("expired message: %+v", got)
	}
}

// testCapReschedulesThenRateLimits: three messages to one phone (distinct orders) due at once are
// claimed in message_id order: a goes, b waits for the next minute, c (expiring before then) fails.
func testCapReschedulesThenRateLimits(t *testing.T, e *env) {
	p := newFake(0)
	d := e.dispatcher(p, 1)
	for id, expire := range map[string]time.Duration{"a": 24 * time.Hour, "b": 24 * time.Hour, "c": 30 * time.Second} {
		m := e.message(t, id, "13812345678", expire)
		m.OrderID = "order-" + id
		e.createMsg(t, m)
	}
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if p.totalSent() != 1 || p.sentCount("a") != 1 {
		t.Fatalf("sent %v in the first minute, want a", p.sent)
	}
	if b := e.get(t, "b"); b.State != domain.StateQueued || !b.NextAttempt.Equal(T0.Add(time.Minute)) || b.Attempts != 0 {
		t.Fatalf("b = %+v, want waiting for +1m with its attempts intact", b)
	}
	if c := e.get(t, "c"); c.State != domain.StateFailed || c.LastError != domain.ErrorRateLimited || !c.Redacted {
		t.Fatalf("c = %+v, want rate limited", c)
	}
	e.clock.Advance(time.Minute)
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if p.sentCount("b") != 1 || p.totalSent() != 2 {
		t.Fatalf("after a minute sent %v", p.sent)
	}
}

// testResendSupersedesHeldMessage: a message held back by the cap is superseded by the resend for
// the same order and phone, which then takes the next slot; the old code never goes out.
func testResendSupersedesHeldMessage(t *testing.T, e *env) {
	p := newFake(0)
	d := e.dispatcher(p, 1)
	first := e.message(t, "first", "13812345678", 24*time.Hour)
	first.OrderID = "order-0"
	e.createMsg(t, first)
	e.create(t, "g1", "13812345678", 24*time.Hour)
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if g1 := e.get(t, "g1"); g1.State != domain.StateQueued || !g1.NextAttempt.Equal(T0.Add(time.Minute)) {
		t.Fatalf("g1 = %+v, want held by the cap", g1)
	}
	e.clock.Advance(30 * time.Second)
	e.create(t, "g2", "13812345678", 24*time.Hour)
	e.clock.Advance(30 * time.Second)
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if p.sentCount("g1") != 0 || p.sentCount("g2") != 1 {
		t.Fatalf("sent %v, want g2 and not g1", p.sent)
	}
	if g1 := e.get(t, "g1"); g1.State != domain.StateFailed || g1.LastError != domain.ErrorSuperseded || g1.Body != "" {
		t.Fatalf("g1 = %+v", g1)
	}
}

// claimHook runs after once the first claim returned a message, before the claimer handles it.
type claimHook struct {
	dispatcher.Store
	once  sync.Once
	after func()
}

func (h *claimHook) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Message, error) {
	msgs, err := h.Store.Claim(ctx, now, lease, limit)
	if len(msgs) > 0 {
		h.once.Do(h.after)
	}
	return msgs, err
}

// testStalledWorkerDoesNotSend: worker A claims and stalls past its lease; worker B reclaims and
// sends; A, resuming, must not call the provider: it saw the message once.
func testStalledWorkerDoesNotSend(t *testing.T, e *env) {
	p := newFake(0)
	e.create(t, "m1", "13812345678", 24*time.Hour)
	b := e.dispatcher(p, 1)
	a := e.dispatcher(p, 1)
	a.Store = &claimHook{Store: e.Store, after: func() {
		e.clock.Advance(30 * time.Second)
		if n, err := b.Drain(ctx); n != 1 || err != nil {
			t.Errorf("B drained %d, %v", n, err)
		}
	}}
	if did, err := a.RunOnce(ctx); !did || err != nil {
		t.Fatalf("A: %v %v", did, err)
	}
	if n := p.callCount("m1"); n != 1 {
		t.Fatalf("provider saw m1 %d times", n)
	}
	if m := e.get(t, "m1"); m.State != domain.StateSent || m.Attempts != 2 {
		t.Fatalf("m1 = %+v", m)
	}
}

// testTwoDispatchersSendEachOnce: two dispatchers (as two replicas) with 4 workers each on one
// engine; every message goes out exactly once.
func testTwoDispatchersSendEachOnce(t *testing.T, e *env) {
	p := newFake(0)
	const n = 120
	for i := range n {
		e.create(t, fmt.Sprintf("m-%03d", i), fmt.Sprintf("+86138%08d", i), 24*time.Hour)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		d := e.dispatcher(p, 4)
		wg.Go(func() { _ = d.Run(runCtx) })
	}
	waitFor(t, func() bool { return p.totalSent() >= n })
	cancel()
	wg.Wait()
	for i := range n {
		id := fmt.Sprintf("m-%03d", i)
		if c := p.sentCount(id); c != 1 {
			t.Fatalf("%s sent %d times", id, c)
		}
		if m := e.get(t, id); m.State != domain.StateSent {
			t.Fatalf("%s is %s", id, m.State)
		}
	}
}

// testCapHoldsWithTwoDispatchers: many messages to one phone, two dispatchers racing: only one
// SMS goes out in the minute; after the clock moves a minute, one more.
func testCapHoldsWithTwoDispatchers(t *testing.T, e *env) {
	p := newFake(0)
	const n = 8
	for i := range n {
		m := e.message(t, fmt.Sprintf("m-%d", i), "13812345678", 24*time.Hour)
		m.OrderID = fmt.Sprintf("order-%d", i)
		e.createMsg(t, m)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range 2 {
		d := e.dispatcher(p, 4)
		wg.Go(func() { _ = d.Run(runCtx) })
	}
	allSettled := func(wantSent int) func() bool {
		return func() bool {
			if p.totalSent() != wantSent {
				return false
			}
			msgs, err := e.Store.List(ctx, "", nil, 100)
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
	if got := p.totalSent(); got != 2 {
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
	dispatcher.Store
	mu      sync.Mutex
	crashed bool
}

func (c *crashingStore) MarkSent(ctx context.Context, m domain.Message, provider string, now time.Time, keepText bool) (bool, error) {
	if c.crash() {
		return false, errors.New("connection lost")
	}
	return c.Store.MarkSent(ctx, m, provider, now, keepText)
}

func (c *crashingStore) MarkSentAll(ctx context.Context, ms []domain.Message, provider string, now time.Time, keepText bool) ([]string, error) {
	if c.crash() {
		return nil, errors.New("connection lost")
	}
	return c.Store.MarkSentAll(ctx, ms, provider, now, keepText)
}

func (c *crashingStore) crash() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := !c.crashed
	c.crashed = true
	return first
}

// testCrashAfterAcceptanceResendsWithSameID is the documented at-least-once edge: the message
// comes back after its lease and goes out again with the same message id (the gateway's
// Idempotency-Key); its own earlier cap reservation does not hold it back.
func testCrashAfterAcceptanceResendsWithSameID(t *testing.T, e *env) {
	p := newFake(0)
	d := e.dispatcher(p, 1)
	d.Store = &crashingStore{Store: e.Store}
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
	sends := p.sent["m1"]
	if len(sends) != 2 || sends[0].ID != sends[1].ID {
		t.Fatalf("sends = %+v", sends)
	}
	if m := e.get(t, "m1"); m.State != domain.StateSent || !m.Redacted {
		t.Fatalf("after resend: %+v", m)
	}
}

// countingStore counts the store calls the dispatcher makes.
type countingStore struct {
	dispatcher.Store
	mu                                  sync.Mutex
	claims, reserves, marks, markedMsgs int
}

func (c *countingStore) Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Message, error) {
	c.mu.Lock()
	c.claims++
	c.mu.Unlock()
	return c.Store.Claim(ctx, now, lease, limit)
}

func (c *countingStore) Reserve(ctx context.Context, m domain.Message, caps domain.Caps, sendTimeout time.Duration) (domain.Decision, time.Time, error) {
	c.mu.Lock()
	c.reserves++
	c.mu.Unlock()
	return c.Store.Reserve(ctx, m, caps, sendTimeout)
}

func (c *countingStore) MarkSentAll(ctx context.Context, ms []domain.Message, provider string, now time.Time, keepText bool) ([]string, error) {
	c.mu.Lock()
	c.marks++
	c.markedMsgs += len(ms)
	c.mu.Unlock()
	return c.Store.MarkSentAll(ctx, ms, provider, now, keepText)
}

// testCapsOffSendsWithoutReservation: with every cap off the dispatcher reserves nothing (no
// per-phone lock, no send-log row); many messages to one phone all go out at once, an expired one
// still fails, and each is sent once and redacted.
func testCapsOffSendsWithoutReservation(t *testing.T, e *env) {
	p := newFake(0)
	cs := &countingStore{Store: e.Store}
	d := e.dispatcher(p, 1)
	d.Store, d.Caps = cs, domain.Caps{}
	for i := range 5 {
		m := e.message(t, fmt.Sprintf("m-%d", i), "13812345678", 24*time.Hour)
		m.OrderID = fmt.Sprintf("order-%d", i)
		e.createMsg(t, m)
	}
	late := e.message(t, "late", "13912345678", time.Second)
	late.OrderID = "order-late"
	e.createMsg(t, late)
	e.clock.Advance(time.Second)
	if n, err := d.Drain(ctx); err != nil || n != 6 {
		t.Fatalf("Drain = %d, %v", n, err)
	}
	if cs.reserves != 0 {
		t.Fatalf("%d reservations with the caps off", cs.reserves)
	}
	for i := range 5 {
		id := fmt.Sprintf("m-%d", i)
		if got := e.get(t, id); got.State != domain.StateSent || !got.Redacted || got.Body != "" || p.sentCount(id) != 1 {
			t.Fatalf("%s = %+v, sent %d times", id, got, p.sentCount(id))
		}
	}
	if got := e.get(t, "late"); got.State != domain.StateFailed || got.LastError != domain.ErrorExpired || p.sentCount("late") != 0 {
		t.Fatalf("late = %+v", got)
	}
	// Turning the caps back on: the sends above left no reservations, so the phone is free.
	m := e.message(t, "capped", "13812345678", 24*time.Hour)
	m.OrderID = "order-capped"
	e.createMsg(t, m)
	d.Caps = domain.DefaultCaps
	if n, err := d.Drain(ctx); err != nil || n != 1 || p.sentCount("capped") != 1 || cs.reserves != 1 {
		t.Fatalf("Drain with caps = %d, %v; sent %d, reserves %d", n, err, p.sentCount("capped"), cs.reserves)
	}
}

// testStalledWorkerDoesNotSendCapsOff is testStalledWorkerDoesNotSend without the reservation: the
// claim's own lease still fences a worker that stalled past it.
func testStalledWorkerDoesNotSendCapsOff(t *testing.T, e *env) {
	p := newFake(0)
	e.create(t, "m1", "13812345678", 24*time.Hour)
	b := e.dispatcher(p, 1)
	b.Caps = domain.Caps{}
	a := e.dispatcher(p, 1)
	a.Caps = domain.Caps{}
	a.Store = &claimHook{Store: e.Store, after: func() {
		e.clock.Advance(30 * time.Second)
		if n, err := b.Drain(ctx); n != 1 || err != nil {
			t.Errorf("B drained %d, %v", n, err)
		}
	}}
	if did, err := a.RunOnce(ctx); !did || err != nil {
		t.Fatalf("A: %v %v", did, err)
	}
	if n := p.callCount("m1"); n != 1 {
		t.Fatalf("provider saw m1 %d times", n)
	}
	if m := e.get(t, "m1"); m.State != domain.StateSent || m.Attempts != 2 {
		t.Fatalf("m1 = %+v", m)
	}
	// Too little lease left for a provider call: not sent either.
	e.create(t, "m2", "13912345678", 24*time.Hour)
	c := e.dispatcher(p, 1)
	c.Caps, c.Lease = domain.Caps{}, 500*time.Millisecond // shorter than SendTimeout (1s)
	if n, err := c.Drain(ctx); n != 1 || err != nil || p.callCount("m2") != 0 {
		t.Fatalf("short lease: drained %d, %v, provider saw m2 %d times", n, err, p.callCount("m2"))
	}
}

// testBatchClaimAndMarkSent: 20 due messages are taken in claims of up to 16 and their acceptances
// recorded in one statement per batch; MarkSentAll is fenced per message.
func testBatchClaimAndMarkSent(t *testing.T, e *env) {
	p := newFake(0)
	cs := &countingStore{Store: e.Store}
	d := e.dispatcher(p, 4)
	d.Store, d.Caps = cs, domain.Caps{}
	const n = 20
	for i := range n {
		e.create(t, fmt.Sprintf("b-%02d", i), fmt.Sprintf("+86138%08d", i), 24*time.Hour)
	}
	if got, err := d.Drain(ctx); err != nil || got != n {
		t.Fatalf("Drain = %d, %v", got, err)
	}
	// 16 + 4, then the empty claim that ends the drain. The SENT updates of concurrent sends share
	// statements (how many depends on timing: pkg/batch's tests pin the coalescing down); each
	// message is marked once.
	if cs.claims != 3 || cs.marks < 1 || cs.marks > n || cs.markedMsgs != n || p.totalSent() != n {
		t.Fatalf("claims %d, MarkSentAll %d for %d messages, sent %d", cs.claims, cs.marks, cs.markedMsgs, p.totalSent())
	}
	for i := range n {
		if m := e.get(t, fmt.Sprintf("b-%02d", i)); m.State != domain.StateSent || !m.Redacted {
			t.Fatalf("%s = %+v", m.ID, m)
		}
	}
	// The fence: a stale claim among current ones is left alone.
	for i, id := range []string{"x", "y", "z"} {
		e.create(t, id, fmt.Sprintf("+86137%08d", i), 24*time.Hour)
	}
	stale, err := e.Store.Claim(ctx, e.clock.Now(), time.Second, 3)
	if err != nil || len(stale) != 3 {
		t.Fatalf("claim: %v %v", stale, err)
	}
	e.clock.Advance(time.Second)
	fresh, err := e.Store.Claim(ctx, e.clock.Now(), time.Minute, 1)
	if err != nil || len(fresh) != 1 || fresh[0].ID != "x" || fresh[0].Attempts != 2 {
		t.Fatalf("reclaim: %v %v", fresh, err)
	}
	ids, err := e.Store.MarkSentAll(ctx, stale, "fake", e.clock.Now(), false)
	if err != nil || fmt.Sprint(slices.Sorted(slices.Values(ids))) != "[y z]" {
		t.Fatalf("MarkSentAll of x (stale), y, z = %v, %v", ids, err)
	}
	if x := e.get(t, "x"); x.State != domain.StateQueued || x.Attempts != 2 || x.Body == "" {
		t.Fatalf("x = %+v", x)
	}
	if z := e.get(t, "z"); z.State != domain.StateSent || !z.Redacted || z.Provider != "fake" {
		t.Fatalf("z = %+v", z)
	}
	if ids, err := e.Store.MarkSentAll(ctx, fresh, "fake", e.clock.Now(), false); err != nil || len(ids) != 1 {
		t.Fatalf("MarkSentAll of the current claim of x = %v, %v", ids, err)
	}
}
