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

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/memstore"
)

// fakeProvider is a unit-level provider: it counts the calls per message id and answers with fail's
// error (nil: accepted).
type fakeProvider struct {
	name       string
	idempotent bool
	mu         sync.Mutex
	calls      map[string]int
	fail       func(id string) error
}

func newFake(name string) *fakeProvider { return &fakeProvider{name: name, calls: map[string]int{}} }

func (f *fakeProvider) Name() string         { return f.name }
func (f *fakeProvider) IdempotentByID() bool { return f.idempotent }

func (f *fakeProvider) Send(_ context.Context, m provider.Message) (provider.Accepted, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[m.ID]++
	if f.fail != nil {
		if err := f.fail(m.ID); err != nil {
			return provider.Accepted{}, err
		}
	}
	return provider.Accepted{ProviderIDs: []string{f.name + "-" + m.ID}}, nil
}

func (f *fakeProvider) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

func refuse(class provider.Class) func(string) error {
	return func(string) error { return &provider.Error{Provider: "fake", Class: class, Code: "X"} }
}

type failoverEnv struct {
	st    *memstore.Store
	clock *clock.Fake
	a, b  *fakeProvider
	d     *dispatcher.Dispatcher
}

func newFailoverEnv(t *testing.T) *failoverEnv {
	t.Helper()
	clk := clock.NewFake(t0)
	st := memstore.New(clk)
	a, b := newFake("a"), newFake("b")
	d := &dispatcher.Dispatcher{Store: st, Providers: []provider.Provider{a, b}, Clock: clk, Log: zap.NewNop(), Sender: "12381",
		MaxAttempts: 6, SendTimeout: 5 * time.Second, Lease: 30 * time.Second, Poll: time.Hour, Jitter: func() float64 { return 0 },
		BreakerFailures: 2, BreakerCooldown: time.Minute}
	return &failoverEnv{st: st, clock: clk, a: a, b: b, d: d}
}

func (e *failoverEnv) queue(t *testing.T, id string) {
	t.Helper()
	m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: "+8613812345678", Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": "482913"}, ExpireAt: t0.Add(24 * time.Hour), OrderID: "order-" + id}, "ICP备案", e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, created, err := e.st.Create(context.Background(), m); err != nil || !created {
		t.Fatal(created, err)
	}
}

func (e *failoverEnv) drain(t *testing.T) {
	t.Helper()
	if _, err := e.d.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (e *failoverEnv) get(t *testing.T, id string) domain.Message {
	t.Helper()
	m, err := e.st.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFailoverTransientGoesToTheNextOnce(t *testing.T) {
	for _, class := range []provider.Class{provider.Transient, provider.Account} {
		t.Run(class.String(), func(t *testing.T) {
			e := newFailoverEnv(t)
			e.a.fail = refuse(class)
			e.queue(t, "m-1")
			e.drain(t)
			m := e.get(t, "m-1")
			if m.State != domain.StateSent || m.Provider != "b" {
				t.Fatalf("state %s via %q, want SENT via b", m.State, m.Provider)
			}
			if e.a.count("m-1") != 1 || e.b.count("m-1") != 1 {
				t.Fatalf("calls a=%d b=%d, want 1 each", e.a.count("m-1"), e.b.count("m-1"))
			}
			if len(m.ProviderIDs) != 1 || m.ProviderIDs[0] != "b-m-1" {
				t.Fatalf("provider ids %v", m.ProviderIDs)
			}
		})
	}
}

func TestFailoverNeverOnPerNumberLimitOrPermanent(t *testing.T) {
	e := newFailoverEnv(t)
	e.a.fail = refuse(provider.PerNumberLimit)
	e.queue(t, "m-1")
	e.drain(t)
	m := e.get(t, "m-1")
	if m.State != domain.StateQueued || e.b.count("m-1") != 0 {
		t.Fatalf("per-number limit: state %s, b calls %d; want QUEUED, none", m.State, e.b.count("m-1"))
	}
	if m.NextAttempt.Before(e.clock.Now().Add(domain.PerNumberLimitWait)) {
		t.Fatalf("retry at %s, sooner than the per-number wait", m.NextAttempt)
	}
	// The limit is over: the same provider (which refused, so does not have it) sends it.
	e.a.fail = nil
	e.clock.Advance(2 * domain.PerNumberLimitWait)
	e.drain(t)
	if m := e.get(t, "m-1"); m.State != domain.StateSent || m.Provider != "a" || e.a.count("m-1") != 2 {
		t.Fatalf("after the wait: state %s via %q, a calls %d", m.State, m.Provider, e.a.count("m-1"))
	}

	e.a.fail = refuse(provider.Permanent)
	e.queue(t, "m-2")
	e.drain(t)
	if m := e.get(t, "m-2"); m.State != domain.StateFailed || e.b.count("m-2") != 0 {
		t.Fatalf("permanent: state %s, b calls %d; want FAILED, none", m.State, e.b.count("m-2"))
	}
}

func TestFailoverBreakerOpensSkipsAndProbes(t *testing.T) {
	e := newFailoverEnv(t)
	down := true
	e.a.fail = func(string) error {
		if down {
			return errors.New("connection refused")
		}
		return nil
	}
	for i := 1; i <= 4; i++ {
		e.queue(t, fmt.Sprintf("m-%d", i))
		e.drain(t)
	}
	for i := 1; i <= 4; i++ {
		id := fmt.Sprintf("m-%d", i)
		wantA := 0
		if i <= 2 {
			wantA = 1 // two failures open the breaker
		}
		if e.a.count(id) != wantA || e.b.count(id) != 1 || e.get(t, id).State != domain.StateSent {
			t.Fatalf("%s: a=%d b=%d state %s; want a=%d b=1 SENT", id, e.a.count(id), e.b.count(id), e.get(t, id).State, wantA)
		}
	}
	if s := e.d.BreakerStates()["a"]; s != dispatcher.BreakerOpen {
		t.Fatalf("breaker of a %s, want open", s)
	}
	// After the cooldown one probe goes to a; it succeeds and closes the breaker.
	down = false
	e.clock.Advance(time.Minute)
	e.queue(t, "m-5")
	e.drain(t)
	if e.a.count("m-5") != 1 || e.b.count("m-5") != 0 || e.get(t, "m-5").Provider != "a" {
		t.Fatalf("probe: a=%d b=%d", e.a.count("m-5"), e.b.count("m-5"))
	}
	if s := e.d.BreakerStates()["a"]; s != dispatcher.BreakerClosed {
		t.Fatalf("breaker of a %s after a good probe, want closed", s)
	}
}

// A worker that handed m to a and crashed before marking it (its lease runs out): the retry goes to
// b, never to a again; an idempotent a would get it again.
func TestFailoverCrashAfterHandOffNeverRepeatsAProvider(t *testing.T) {
	for _, idempotent := range []bool{false, true} {
		t.Run(fmt.Sprint("idempotent=", idempotent), func(t *testing.T) {
			e := newFailoverEnv(t)
			e.a.idempotent = idempotent
			e.queue(t, "m-1")
			ctx := context.Background()
			claimed, err := e.st.Claim(ctx, e.clock.Now(), 30*time.Second, 1)
			if err != nil || len(claimed) != 1 {
				t.Fatal(claimed, err)
			}
			if cur, handed, err := e.st.Hand(ctx, claimed[0], "a", e.clock.Now(), false, idempotent); err != nil || !cur || !handed {
				t.Fatal(cur, handed, err)
			}
			// "a" was called here; the worker died before MarkSent.
			e.clock.Advance(31 * time.Second)
			e.drain(t)
			m := e.get(t, "m-1")
			want := "b"
			if idempotent {
				want = "a"
			}
			if m.State != domain.StateSent || m.Provider != want {
				t.Fatalf("state %s via %q, want SENT via %s", m.State, m.Provider, want)
			}
			if idempotent && e.b.count("m-1") != 0 || !idempotent && e.a.count("m-1") != 0 {
				t.Fatalf("calls a=%d b=%d", e.a.count("m-1"), e.b.count("m-1"))
			}
			// The stale claim is fenced: its hand-off is refused.
			if cur, _, err := e.st.Hand(ctx, claimed[0], "b", e.clock.Now(), true, false); err != nil || cur {
				t.Fatal("a stale claim recorded a hand-off", cur, err)
			}
		})
	}
}

func TestFailoverAllTriedFails(t *testing.T) {
	e := newFailoverEnv(t)
	e.a.fail = func(string) error { return errors.New("timeout") } // outcome unknown: never again
	e.b.fail = e.a.fail
	e.queue(t, "m-1")
	for range 5 {
		e.drain(t)
		e.clock.Advance(time.Hour)
	}
	m := e.get(t, "m-1")
	if m.State != domain.StateFailed || m.LastError != dispatcher.ErrorAllProvidersTried {
		t.Fatalf("state %s (%q), want FAILED: all tried", m.State, m.LastError)
	}
	if e.a.count("m-1") != 1 || e.b.count("m-1") != 1 {
		t.Fatalf("calls a=%d b=%d, want 1 each", e.a.count("m-1"), e.b.count("m-1"))
	}
	if n := e.st.Outbox().Len(); n != 1 {
		t.Fatalf("%d delivery reports, want the FAILED one", n)
	}
}

// Refusals (the gateway answered: it does not have the message) go round again until MaxAttempts.
func TestFailoverRefusalsGoRoundUntilMaxAttempts(t *testing.T) {
	e := newFailoverEnv(t)
	e.a.fail = refuse(provider.Transient)
	e.b.fail = refuse(provider.Account)
	e.queue(t, "m-1")
	for range 10 {
		e.drain(t)
		e.clock.Advance(time.Hour)
	}
	if m := e.get(t, "m-1"); m.State != domain.StateFailed || m.Attempts != 6 {
		t.Fatalf("state %s after %d attempts, want FAILED after 6", m.State, m.Attempts)
	}
	if e.a.count("m-1") != 3 || e.b.count("m-1") != 3 {
		t.Fatalf("calls a=%d b=%d, want 3 each", e.a.count("m-1"), e.b.count("m-1"))
	}
}
