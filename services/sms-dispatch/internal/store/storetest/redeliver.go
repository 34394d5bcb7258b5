package storetest

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// namedFake is a failover provider of the redelivery tests: fakeProvider under its own name, whose
// id of a message is "<name>-<message id>"; refuse makes it answer every send with a transient
// refusal (it did not take the message).
type namedFake struct {
	*fakeProvider
	name       string
	idempotent bool
	refuse     bool
}

func named(name string) *namedFake { return &namedFake{fakeProvider: newFake(0), name: name} }

func (f *namedFake) Name() string         { return f.name }
func (f *namedFake) IdempotentByID() bool { return f.idempotent }

func (f *namedFake) Send(ctx context.Context, m provider.Message) (provider.Accepted, error) {
	if f.refuse {
		f.mu.Lock()
		f.calls[m.ID]++
		f.mu.Unlock()
		return provider.Accepted{}, &provider.Error{Provider: f.name, Class: provider.Transient, Code: "busy"}
	}
	acc, err := f.fakeProvider.Send(ctx, m)
	if err == nil {
		acc.ProviderIDs = []string{f.name + "-" + m.ID}
	}
	return acc, err
}

// redelivering turns redelivery on (tries over ps, in order) and returns a failover dispatcher on
// them: default caps, receipts due within 10 minutes.
func (e *env) redelivering(tries int, ps ...*namedFake) *dispatcher.Dispatcher {
	var (
		names []string
		list  []provider.Provider
	)
	for _, p := range ps {
		names, list = append(names, p.name), append(list, p)
	}
	e.Store.SetRedelivery(domain.Redelivery{Tries: tries, Providers: names})
	return &dispatcher.Dispatcher{Store: e.Store, Providers: list, Clock: e.clock, Log: zap.NewNop(), Caps: domain.DefaultCaps,
		Sender: "12381", MaxAttempts: 4, SendTimeout: time.Second, Lease: 30 * time.Second, Poll: 5 * time.Millisecond,
		Jitter: func() float64 { return 0 }, BreakerFailures: 5, BreakerCooldown: time.Minute, AtRiskAfter: 10 * time.Minute}
}

// queueFor stores message id of its own order "order-<id>", expiring after expire.
func (e *env) queueFor(t *testing.T, id string, expire time.Duration) domain.Message {
	t.Helper()
	m := e.message(t, id, "13812345678", expire)
	m.OrderID = "order-" + id
	e.createMsg(t, m)
	return m
}

func drain(t *testing.T, d *dispatcher.Dispatcher) {
	t.Helper()
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

// wantState checks message id's state and provider.
func (e *env) wantState(t *testing.T, id string, state domain.State, provider string) domain.Message {
	t.Helper()
	m := e.get(t, id)
	if m.State != state || m.Provider != provider {
		t.Fatalf("%s is %s via %q (%s), want %s via %q", id, m.State, m.Provider, m.LastError, state, provider)
	}
	return m
}

// wantDelivery checks that the outbox holds, of message id's delivery reports, exactly one, of state
// (none when state is unspecified), and no FAILED one.
func (e *env) wantDelivery(t *testing.T, id string, state verificationv1.DeliveryState) {
	t.Helper()
	reps := e.deliveryReports(t, id)
	if state == verificationv1.DeliveryState_DELIVERY_STATE_UNSPECIFIED {
		if len(reps) != 0 {
			t.Fatalf("%s reported %v, want nothing yet", id, reps)
		}
		return
	}
	if len(reps) != 1 {
		t.Fatalf("%s reports %v, want one %s", id, reps, state)
	}
	for _, r := range reps {
		if r.GetState() != state {
			t.Fatalf("%s reported %s, want %s", id, r.GetState(), state)
		}
	}
}

const noReport = verificationv1.DeliveryState_DELIVERY_STATE_UNSPECIFIED

// An UNDELIVERED receipt of provider a queues the message again, reporting nothing, its text held;
// provider b sends it under the same id (the phone's cap does not count the message's own first
// send); b's DELIVERED is reported once, and the text is wiped. Repeated and late receipts of either
// provider change nothing more, and a never gets the message again.
func testRedeliverUndeliveredThroughTheNext(t *testing.T, e *env) {
	a, b := named("a"), named("b")
	d := e.redelivering(1, a, b)
	m := e.queueFor(t, "m1", time.Hour)
	drain(t, d)
	if got := e.wantState(t, "m1", domain.StateSent, "a"); got.Body != m.Body || got.Redacted {
		t.Fatalf("a redeliverable message's text is not held: %+v", got)
	}
	e.clock.Advance(10 * time.Second)
	undelivered := domain.Receipt{Provider: "a", ProviderID: "a-m1", Code: "UNDELIV"}
	if o := e.receipt(t, undelivered); o != domain.ReceiptRedelivered {
		t.Fatalf("a's UNDELIVERED: %q, want redelivered", o)
	}
	if got := e.wantState(t, "m1", domain.StateQueued, "a"); got.Body != m.Body || got.LastError != domain.ErrorRedeliverUndelivered {
		t.Fatalf("queued again: %+v", got)
	}
	e.wantDelivery(t, "m1", noReport)
	if o := e.receipt(t, undelivered); o != domain.ReceiptRepeat {
		t.Fatalf("a's UNDELIVERED again: %q, want repeat", o)
	}
	drain(t, d)
	got := e.wantState(t, "m1", domain.StateSent, "b")
	if a.callCount("m1") != 1 || b.sentCount("m1") != 1 || b.sent["m1"][0].Text != m.Body || got.ProviderIDs[0] != "b-m1" {
		t.Fatalf("calls a=%d b=%d, ids %v", a.callCount("m1"), b.callCount("m1"), got.ProviderIDs)
	}
	// No provider is left that never had it: the text is wiped now, as without redelivery.
	if got.Body != "" || !got.Redacted {
		t.Fatalf("text kept after the last provider took it: %+v", got)
	}
	if o := e.receipt(t, domain.Receipt{Provider: "b", ProviderID: "b-m1", Delivered: true, Code: "DELIVRD"}); o != domain.ReceiptApplied {
		t.Fatalf("b's DELIVERED: %q", o)
	}
	for _, r := range []domain.Receipt{
		{Provider: "b", ProviderID: "b-m1", Delivered: true, Code: "DELIVRD"},
		{Provider: "a", ProviderID: "a-m1", Delivered: true, Code: "DELIVRD"},
		undelivered,
		{Provider: "b", ProviderID: "b-m1", Code: "UNDELIV"},
	} {
		if o := e.receipt(t, r); o != domain.ReceiptRepeat {
			t.Fatalf("receipt %+v after DELIVERED: %q, want repeat", r, o)
		}
	}
	e.wantState(t, "m1", domain.StateDelivered, "b")
	e.wantDelivery(t, "m1", verificationv1.DeliveryState_DELIVERY_STATE_DELIVERED)
	drain(t, d)
	if a.callCount("m1") != 1 || b.callCount("m1") != 1 {
		t.Fatalf("calls a=%d b=%d, want 1 each", a.callCount("m1"), b.callCount("m1"))
	}
}

// The sweep queues a message without a receipt in time again instead of reporting it AT_RISK; once
// the next provider sent it and no try is left, the next sweep reports AT_RISK. A late DELIVERED of
// the first provider still counts: the person got the code.
func testRedeliverAtRiskThenLateDelivered(t *testing.T, e *env) {
	a, b, c := named("a"), named("b"), named("c")
	d := e.redelivering(1, a, b, c)
	e.queueFor(t, "m1", time.Hour)
	drain(t, d)
	e.clock.Advance(10 * time.Minute)
	if n, err := d.SweepAtRisk(ctx); err != nil || n != (domain.Swept{Redelivered: 1}) {
		t.Fatalf("sweep = %+v, %v", n, err)
	}
	e.wantState(t, "m1", domain.StateQueued, "a")
	e.wantDelivery(t, "m1", noReport)
	drain(t, d)
	if got := e.wantState(t, "m1", domain.StateSent, "b"); got.Body != "" || !got.Redacted {
		t.Fatalf("no try left, yet the text is kept: %+v", got)
	}
	e.clock.Advance(10 * time.Minute)
	if n, err := d.SweepAtRisk(ctx); err != nil || n != (domain.Swept{AtRisk: 1}) {
		t.Fatalf("second sweep = %+v, %v", n, err)
	}
	e.wantState(t, "m1", domain.StateAtRisk, "b")
	e.wantDelivery(t, "m1", verificationv1.DeliveryState_DELIVERY_STATE_AT_RISK)
	if o := e.receipt(t, domain.Receipt{Provider: "a", ProviderID: "a-m1", Delivered: true, Code: "DELIVRD"}); o != domain.ReceiptApplied {
		t.Fatalf("a's late DELIVERED: %q", o)
	}
	got := e.wantState(t, "m1", domain.StateDelivered, "b")
	if got.DeliveryCode != "DELIVRD" {
		t.Fatalf("after a's late receipt: %+v", got)
	}
	if reps := e.deliveryReports(t, "m1"); len(reps) != 2 || reps["delivery:m1:DELIVERED"] == nil {
		t.Fatalf("reports %v, want AT_RISK then DELIVERED", reps)
	}
	if a.callCount("m1") != 1 || b.callCount("m1") != 1 || c.callCount("m1") != 0 {
		t.Fatalf("calls a=%d b=%d c=%d", a.callCount("m1"), b.callCount("m1"), c.callCount("m1"))
	}
}

// A DELIVERED of the first provider while the message waits for its redelivery ends it: it is
// reported DELIVERED and the next provider never gets it.
func testEarlierDeliveredCancelsRedelivery(t *testing.T, e *env) {
	a, b := named("a"), named("b")
	d := e.redelivering(1, a, b)
	e.queueFor(t, "m1", time.Hour)
	drain(t, d)
	e.receipt(t, domain.Receipt{Provider: "a", ProviderID: "a-m1", Code: "UNDELIV"})
	// The carrier's retry got through after all (receipts come in any order).
	if o := e.receipt(t, domain.Receipt{Provider: "a", MessageID: "m1", Delivered: true, Code: "DELIVRD"}); o != domain.ReceiptApplied {
		t.Fatalf("a's DELIVERED while queued again: %q", o)
	}
	if got := e.wantState(t, "m1", domain.StateDelivered, "a"); got.Body != "" || !got.Redacted {
		t.Fatalf("held text not wiped: %+v", got)
	}
	drain(t, d)
	if b.callCount("m1") != 0 {
		t.Fatalf("b got a delivered message %d times", b.callCount("m1"))
	}
	e.wantDelivery(t, "m1", verificationv1.DeliveryState_DELIVERY_STATE_DELIVERED)
}

// Tries exhausted: the second UNDELIVERED is final and reported, though provider c never had it.
// No provider left: with tries to spare, the last provider's UNDELIVERED is reported at once.
func testRedeliveryEndsWithTheFinalTruth(t *testing.T, e *env) {
	for _, tc := range []struct {
		name  string
		tries int
		ps    []*namedFake
	}{
		{"tries-exhausted", 1, []*namedFake{named("a"), named("b"), named("c")}},
		{"no-provider-left", 3, []*namedFake{named("a"), named("b")}},
	} {
		d := e.redelivering(tc.tries, tc.ps...)
		id := "m-" + tc.name
		e.queueFor(t, id, time.Hour)
		drain(t, d)
		if o := e.receipt(t, domain.Receipt{Provider: "a", ProviderID: "a-" + id, Code: "UNDELIV"}); o != domain.ReceiptRedelivered {
			t.Fatalf("%s: a's UNDELIVERED: %q", tc.name, o)
		}
		drain(t, d)
		e.wantState(t, id, domain.StateSent, "b")
		if o := e.receipt(t, domain.Receipt{Provider: "b", ProviderID: "b-" + id, Code: "MK:0001"}); o != domain.ReceiptApplied {
			t.Fatalf("%s: b's UNDELIVERED: %q, want applied (final)", tc.name, o)
		}
		if got := e.wantState(t, id, domain.StateUndelivered, "b"); got.DeliveryCode != "MK:0001" || got.Body != "" {
			t.Fatalf("%s: %+v", tc.name, got)
		}
		e.wantDelivery(t, id, verificationv1.DeliveryState_DELIVERY_STATE_UNDELIVERED)
		drain(t, d)
		for _, p := range tc.ps {
			if want := map[string]int{"a": 1, "b": 1}[p.name]; p.callCount(id) != want {
				t.Fatalf("%s: %s called %d times, want %d", tc.name, p.name, p.callCount(id), want)
			}
		}
		e.clock.Advance(time.Hour) // the next message to the phone is not held by the cap
	}
}

// No redelivery once the window closed, for a superseded message (a newer code was sent), or with
// tries 0 (as before redelivery existed: the text is wiped on acceptance): the UNDELIVERED is
// reported at once.
func testNoRedeliveryClosedSupersededOrOff(t *testing.T, e *env) {
	a, b := named("a"), named("b")
	d := e.redelivering(1, a, b)
	e.queueFor(t, "expiring", 30*time.Minute)
	drain(t, d)
	e.clock.Advance(30 * time.Minute)
	if o := e.receipt(t, domain.Receipt{Provider: "a", ProviderID: "a-expiring", Code: "UNDELIV"}); o != domain.ReceiptApplied {
		t.Fatalf("expired: %q", o)
	}
	e.wantDelivery(t, "expiring", verificationv1.DeliveryState_DELIVERY_STATE_UNDELIVERED)

	old := e.message(t, "old", "13812345678", time.Hour)
	e.createMsg(t, old)
	drain(t, d)
	e.clock.Advance(time.Minute)
	e.createMsg(t, e.message(t, "new", "13812345678", time.Hour)) // same order, phone and template
	if o := e.receipt(t, domain.Receipt{Provider: "a", ProviderID: "a-old", Code: "UNDELIV"}); o != domain.ReceiptApplied {
		t.Fatalf("superseded: %q", o)
	}
	e.wantState(t, "old", domain.StateUndelivered, "a")
	drain(t, d) // "new" goes, so that the phone's cap does not hold "off" back

	e.clock.Advance(time.Hour)
	d = e.redelivering(0, a, b)
	e.queueFor(t, "off", time.Hour)
	drain(t, d)
	if got := e.wantState(t, "off", domain.StateSent, "a"); got.Body != "" || !got.Redacted {
		t.Fatalf("tries 0 keeps the text: %+v", got)
	}
	if o := e.receipt(t, domain.Receipt{Provider: "a", ProviderID: "a-off", Code: "UNDELIV"}); o != domain.ReceiptApplied {
		t.Fatalf("tries 0: %q", o)
	}
	e.wantDelivery(t, "off", verificationv1.DeliveryState_DELIVERY_STATE_UNDELIVERED)
	e.clock.Advance(10 * time.Minute)
	if n, err := d.SweepAtRisk(ctx); err != nil || n.Redelivered != 0 {
		t.Fatalf("sweep with tries 0 = %+v, %v", n, err)
	}
	if b.callCount("expiring")+b.callCount("old")+b.callCount("off") != 0 {
		t.Fatal("b got a message that had no redelivery")
	}
}

// An idempotent provider that accepted the message is barred too: when the next provider refuses the
// redelivery on every attempt, the message FAILS (and is reported so) without going back to a.
func testIdempotentFirstProviderNeverGetsItAgain(t *testing.T, e *env) {
	a, b := named("a"), named("b")
	a.idempotent, b.refuse = true, true
	d := e.redelivering(1, a, b)
	e.queueFor(t, "m1", time.Hour)
	drain(t, d)
	e.receipt(t, domain.Receipt{Provider: "a", ProviderID: "a-m1", Code: "UNDELIV"})
	for range 8 {
		drain(t, d)
		e.clock.Advance(time.Minute) // the backoff of b's refusals
	}
	if got := e.get(t, "m1"); got.State != domain.StateFailed {
		t.Fatalf("after b refused every attempt: %+v", got)
	}
	if a.callCount("m1") != 1 || b.callCount("m1") != 3 { // MaxAttempts 4: the first was a's
		t.Fatalf("calls a=%d b=%d, want 1 and 3", a.callCount("m1"), b.callCount("m1"))
	}
	if reps := e.reports(t)["m1"]; len(reps) != 1 || reps[0].GetState() != verificationv1.DeliveryState_DELIVERY_STATE_FAILED {
		t.Fatalf("reports %v, want one FAILED", reps)
	}
}

// The same UNDELIVERED receipt, concurrently, queues the message again once; two dispatchers then
// send it once, through b.
func testConcurrentReceiptsAndDispatchersRedeliverOnce(t *testing.T, e *env) {
	a, b := named("a"), named("b")
	d1 := e.redelivering(1, a, b)
	d2 := e.redelivering(1, a, b)
	e.queueFor(t, "m1", time.Hour)
	drain(t, d1)
	outs := make([]domain.ReceiptOutcome, 8)
	var wg sync.WaitGroup
	for i := range outs {
		wg.Go(func() { outs[i] = e.receipt(t, domain.Receipt{Provider: "a", ProviderID: "a-m1", Code: "UNDELIV"}) })
	}
	wg.Wait()
	oneThenRepeats(t, outs, domain.ReceiptRedelivered)
	for _, d := range []*dispatcher.Dispatcher{d1, d2} {
		wg.Go(func() { drain(t, d) })
	}
	wg.Wait()
	e.wantState(t, "m1", domain.StateSent, "b")
	if a.callCount("m1") != 1 || b.callCount("m1") != 1 {
		t.Fatalf("calls a=%d b=%d, want 1 each", a.callCount("m1"), b.callCount("m1"))
	}
	e.wantDelivery(t, "m1", noReport)
}

// A provider whose outcome is unknown (its call failed without an answer: it may have the message)
// is barred by a redelivery like the sender, even when idempotent by our id: the redelivery goes to
// a provider that never had the message.
func testRedeliveryBarsProvidersThatMayHaveIt(t *testing.T, e *env) {
	a, b, c := named("a"), named("b"), named("c")
	a.idempotent, a.failFirst = true, 1
	d := e.redelivering(1, a, b, c)
	d.BreakerFailures = 1
	e.queueFor(t, "m1", time.Hour)
	drain(t, d) // a fails (no answer) and its breaker opens: b takes the message
	e.wantState(t, "m1", domain.StateSent, "b")
	if o := e.receipt(t, domain.Receipt{Provider: "b", ProviderID: "b-m1", Code: "UNDELIV"}); o != domain.ReceiptRedelivered {
		t.Fatalf("b's UNDELIVERED: %q", o)
	}
	e.clock.Advance(2 * time.Minute) // a's breaker lets a probe through again
	drain(t, d)
	e.wantState(t, "m1", domain.StateSent, "c")
	if a.callCount("m1") != 1 || b.callCount("m1") != 1 || c.callCount("m1") != 1 {
		t.Fatalf("calls a=%d b=%d c=%d, want 1 each", a.callCount("m1"), b.callCount("m1"), c.callCount("m1"))
	}
}

// A crash between b's acceptance of the redelivery and its SENT mark: after the lease the message
// goes to c, never to a or b again; the redelivery itself was one transaction with the receipt.
func testCrashDuringRedeliveryNeverSendsTwiceToOne(t *testing.T, e *env) {
	a, b, c := named("a"), named("b"), named("c")
	d := e.redelivering(2, a, b, c)
	crashing := &crashingStore{Store: e.Store, crashed: true}
	d.Store = crashing
	e.queueFor(t, "m1", time.Hour)
	drain(t, d)
	e.receipt(t, domain.Receipt{Provider: "a", ProviderID: "a-m1", Code: "UNDELIV"})
	crashing.mu.Lock()
	crashing.crashed = false // the next SENT mark is lost
	crashing.mu.Unlock()
	if _, err := d.Drain(ctx); err == nil {
		t.Fatal("expected the simulated crash")
	}
	if got := e.wantState(t, "m1", domain.StateQueued, "a"); got.Body == "" {
		t.Fatalf("text lost in the crash: %+v", got)
	}
	e.clock.Advance(30 * time.Second) // the lease
	drain(t, d)
	e.wantState(t, "m1", domain.StateSent, "c")
	if a.callCount("m1") != 1 || b.callCount("m1") != 1 || c.callCount("m1") != 1 {
		t.Fatalf("calls a=%d b=%d c=%d, want 1 each", a.callCount("m1"), b.callCount("m1"), c.callCount("m1"))
	}
	e.wantDelivery(t, "m1", noReport)
}

// An UNDELIVERED receipt that overtakes a's SENT mark is parked, and applied with the mark: the
// message is redelivered through b all the same.
func testParkedUndeliveredRedelivers(t *testing.T, e *env) {
	a, b := named("a"), named("b")
	d := e.redelivering(1, a, b)
	a.onSend = func(m provider.Message) {
		if o := e.receipt(t, domain.Receipt{Provider: "a", MessageID: m.ID, Code: "UNDELIV"}); o != domain.ReceiptParked {
			t.Errorf("receipt before the SENT mark: %q, want parked", o)
		}
	}
	e.queueFor(t, "m1", time.Hour)
	if _, err := d.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	e.wantState(t, "m1", domain.StateQueued, "a")
	drain(t, d)
	e.wantState(t, "m1", domain.StateSent, "b")
	if a.callCount("m1") != 1 || b.callCount("m1") != 1 {
		t.Fatalf("calls a=%d b=%d, want 1 each", a.callCount("m1"), b.callCount("m1"))
	}
	e.wantDelivery(t, "m1", noReport)
}

// Two replicas' sweeps at once queue an overdue message again once, and report nothing.
func testConcurrentSweepsRedeliverOnce(t *testing.T, e *env) {
	a, b := named("a"), named("b")
	d1, d2 := e.redelivering(1, a, b), e.redelivering(1, a, b)
	e.queueFor(t, "m1", time.Hour)
	drain(t, d1)
	e.clock.Advance(10 * time.Minute)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		totals domain.Swept
	)
	for _, d := range []*dispatcher.Dispatcher{d1, d2} {
		wg.Go(func() {
			n, err := d.SweepAtRisk(ctx)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			totals.AtRisk, totals.Redelivered = totals.AtRisk+n.AtRisk, totals.Redelivered+n.Redelivered
			mu.Unlock()
		})
	}
	wg.Wait()
	if totals != (domain.Swept{Redelivered: 1}) {
		t.Fatalf("sweeps = %+v, want one redelivery", totals)
	}
	e.wantState(t, "m1", domain.StateQueued, "a")
	e.wantDelivery(t, "m1", noReport)
}
