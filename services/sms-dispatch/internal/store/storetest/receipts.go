package storetest

import (
	"sync"
	"testing"
	"time"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// sent creates message id (order "order-<id>") and has the fake provider accept it: it is SENT at
// the clock's now with the provider id "pid-<id>-1".
func (e *env) sent(t *testing.T, id string) domain.Message {
	t.Helper()
	m := e.message(t, id, "13812345678", time.Hour)
	m.OrderID = "order-" + id
	e.createMsg(t, m)
	d := e.dispatcher(newFake(0), 1)
	d.Caps = domain.Caps{}
	if n, err := d.Drain(ctx); err != nil || n != 1 {
		t.Fatalf("Drain = %d, %v", n, err)
	}
	got := e.get(t, id)
	if got.State != domain.StateSent || len(got.ProviderIDs) != 1 || got.ProviderIDs[0] != "pid-"+id+"-1" {
		t.Fatalf("after send: %+v", got)
	}
	return got
}

func (e *env) receipt(t *testing.T, r domain.Receipt) domain.ReceiptOutcome {
	t.Helper()
	if r.Provider == "" {
		r.Provider = "fake"
	}
	if r.At.IsZero() {
		r.At = e.clock.Now()
	}
	out, err := e.Store.RecordReceipt(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// deliveryReports are the outbox's reports of message id other than FAILED, by request id.
func (e *env) deliveryReports(t *testing.T, id string) map[string]*verificationv1.ReportDeliveryRequest {
	t.Helper()
	out := map[string]*verificationv1.ReportDeliveryRequest{}
	for _, r := range e.reports(t)[id] {
		if _, dup := out[r.GetRequestId()]; dup {
			t.Fatalf("report %s written twice", r.GetRequestId())
		}
		out[r.GetRequestId()] = r
	}
	return out
}

// A receipt by the provider's id makes the message DELIVERED with the carrier's code and writes one
// report; the same receipt again (concurrently, too) changes nothing and reports nothing more.
func testReceiptDeliveredOnceAndReported(t *testing.T, e *env) {
	e.sent(t, "m1")
	e.clock.Advance(time.Second)
	r := domain.Receipt{ProviderID: "pid-m1-1", Delivered: true, Code: "DELIVRD"}
	var wg sync.WaitGroup
	outs := make([]domain.ReceiptOutcome, 8)
	for i := range outs {
		wg.Go(func() { outs[i] = e.receipt(t, r) })
	}
	wg.Wait()
	oneThenRepeats(t, outs, domain.ReceiptApplied)
	got := e.get(t, "m1")
	if got.State != domain.StateDelivered || got.DeliveryCode != "DELIVRD" || !got.ReceiptAt.Equal(T0.Add(time.Second)) {
		t.Fatalf("after the receipt: %+v", got)
	}
	reps := e.deliveryReports(t, "m1")
	rep := reps["delivery:m1:DELIVERED"]
	if len(reps) != 1 || rep == nil || rep.GetState() != verificationv1.DeliveryState_DELIVERY_STATE_DELIVERED ||
		rep.GetOrderId() != "order-m1" || rep.GetReason() != "DELIVRD" {
		t.Fatalf("reports %v", reps)
	}
}

// UNDELIVERED after DELIVERED (and the reverse, on another message) changes nothing: the first final
// state is the last; the carrier's code of the first stays.
func testReceiptFinalStateNeverOverwritten(t *testing.T, e *env) {
	e.sent(t, "a")
	e.clock.Advance(time.Minute)
	e.sent(t, "b")
	if o := e.receipt(t, domain.Receipt{ProviderID: "pid-a-1", Delivered: true, Code: "DELIVRD"}); o != domain.ReceiptApplied {
		t.Fatalf("a delivered: %q", o)
	}
	if o := e.receipt(t, domain.Receipt{ProviderID: "pid-a-1", Delivered: false, Code: "UNDELIV"}); o != domain.ReceiptRepeat {
		t.Fatalf("a undelivered after delivered: %q", o)
	}
	if o := e.receipt(t, domain.Receipt{ProviderID: "pid-b-1", Delivered: false, Code: "MK:0001"}); o != domain.ReceiptApplied {
		t.Fatalf("b undelivered: %q", o)
	}
	if o := e.receipt(t, domain.Receipt{MessageID: "b", Delivered: true, Code: "DELIVRD"}); o != domain.ReceiptRepeat {
		t.Fatalf("b delivered after undelivered: %q", o)
	}
	if a := e.get(t, "a"); a.State != domain.StateDelivered || a.DeliveryCode != "DELIVRD" {
		t.Fatalf("a = %+v", a)
	}
	if b := e.get(t, "b"); b.State != domain.StateUndelivered || b.DeliveryCode != "MK:0001" {
		t.Fatalf("b = %+v", b)
	}
	if reps := e.deliveryReports(t, "b"); len(reps) != 1 || reps["delivery:b:UNDELIVERED"].GetReason() != "MK:0001" {
		t.Fatalf("b reports %v", reps)
	}
	// Another provider's receipt naming our message id is not this message's.
	e.clock.Advance(time.Minute)
	e.sent(t, "c")
	if o := e.receipt(t, domain.Receipt{Provider: "other", MessageID: "c", Delivered: true}); o != domain.ReceiptUnknown {
		t.Fatalf("another provider's receipt: %q", o)
	}
	if c := e.get(t, "c"); c.State != domain.StateSent {
		t.Fatalf("c = %+v", c)
	}
}

// A receipt that overtakes the SENT mark (by our message id while QUEUED, or by a provider id no
// message has yet) is parked and applied when the message is marked SENT; the earliest parked wins.
func testReceiptBeforeSentIsParkedAndApplied(t *testing.T, e *env) {
	m := e.message(t, "m1", "13812345678", time.Hour)
	m.OrderID = "order-m1"
	e.createMsg(t, m)
	if o := e.receipt(t, domain.Receipt{ProviderID: "pid-m1-1", Delivered: false, Code: "UNDELIV"}); o != domain.ReceiptUnknown {
		t.Fatalf("receipt before the provider id is filed: %q", o)
	}
	e.clock.Advance(time.Second)
	if o := e.receipt(t, domain.Receipt{MessageID: "m1", Delivered: true, Code: "DELIVRD"}); o != domain.ReceiptParked {
		t.Fatalf("receipt for a queued message: %q", o)
	}
	if got := e.get(t, "m1"); got.State != domain.StateQueued {
		t.Fatalf("a parked receipt changed the message: %+v", got)
	}
	d := e.dispatcher(newFake(0), 1)
	d.Caps = domain.Caps{}
	if n, err := d.Drain(ctx); err != nil || n != 1 {
		t.Fatalf("Drain = %d, %v", n, err)
	}
	got := e.get(t, "m1")
	if got.State != domain.StateUndelivered || got.DeliveryCode != "UNDELIV" || !got.ReceiptAt.Equal(T0) {
		t.Fatalf("after SENT: %+v, want the earliest parked receipt (UNDELIVERED) applied", got)
	}
	if reps := e.deliveryReports(t, "m1"); len(reps) != 1 || reps["delivery:m1:UNDELIVERED"] == nil {
		t.Fatalf("reports %v", reps)
	}
	// Applied once: the same receipt again is a repeat.
	if o := e.receipt(t, domain.Receipt{ProviderID: "pid-m1-1", Delivered: true}); o != domain.ReceiptRepeat {
		t.Fatalf("after applying: %q", o)
	}
}

// A receipt for ids no message has changes nothing and reports nothing.
func testReceiptUnknownIDChangesNothing(t *testing.T, e *env) {
	e.sent(t, "m1")
	for _, r := range []domain.Receipt{{ProviderID: "nobody", Delivered: true}, {MessageID: "nobody", Delivered: false}} {
		if o := e.receipt(t, r); o != domain.ReceiptUnknown {
			t.Fatalf("%+v: %q", r, o)
		}
	}
	if got := e.get(t, "m1"); got.State != domain.StateSent {
		t.Fatalf("m1 = %+v", got)
	}
	if reps := e.deliveryReports(t, "m1"); len(reps) != 0 {
		t.Fatalf("reports %v", reps)
	}
}

// The sweep makes a message SENT at or before now-after AT_RISK (one report), not a younger one nor
// one that has its receipt; a late receipt still makes an AT_RISK message DELIVERED (its own report).
func testAtRiskSweepThenLateReceipt(t *testing.T, e *env) {
	e.sent(t, "old")
	e.sent(t, "answered")
	e.clock.Advance(5 * time.Minute)
	e.sent(t, "young")
	e.receipt(t, domain.Receipt{ProviderID: "pid-answered-1", Delivered: true})
	e.clock.Advance(5 * time.Minute) // old is 10 minutes without a receipt, young 5
	d := e.dispatcher(newFake(0), 1)
	d.AtRiskAfter = 10 * time.Minute
	if n, err := d.SweepAtRisk(ctx); err != nil || n != (domain.Swept{AtRisk: 1}) {
		t.Fatalf("sweep = %+v, %v", n, err)
	}
	if n, err := d.SweepAtRisk(ctx); err != nil || n.Total() != 0 {
		t.Fatalf("second sweep = %+v, %v", n, err)
	}
	for id, want := range map[string]domain.State{"old": domain.StateAtRisk, "answered": domain.StateDelivered, "young": domain.StateSent} {
		if got := e.get(t, id); got.State != want {
			t.Fatalf("%s = %s, want %s", id, got.State, want)
		}
	}
	if reps := e.deliveryReports(t, "old"); len(reps) != 1 ||
		reps["delivery:old:AT_RISK"].GetState() != verificationv1.DeliveryState_DELIVERY_STATE_AT_RISK {
		t.Fatalf("old reports %v", reps)
	}
	if o := e.receipt(t, domain.Receipt{ProviderID: "pid-old-1", Delivered: true, Code: "DELIVRD"}); o != domain.ReceiptApplied {
		t.Fatalf("late receipt: %q", o)
	}
	if got := e.get(t, "old"); got.State != domain.StateDelivered {
		t.Fatalf("old after the late receipt = %+v", got)
	}
	if reps := e.deliveryReports(t, "old"); len(reps) != 2 || reps["delivery:old:DELIVERED"] == nil {
		t.Fatalf("old reports %v", reps)
	}
}
