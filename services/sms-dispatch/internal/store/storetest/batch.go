package storetest

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// receipts records rs as one batch (provider "fake" and the clock's now unless set) and returns the
// outcomes.
func (e *env) receipts(t *testing.T, rs ...domain.Receipt) []domain.ReceiptOutcome {
	t.Helper()
	for i := range rs {
		if rs[i].Provider == "" {
			rs[i].Provider = "fake"
		}
		if rs[i].At.IsZero() {
			rs[i].At = e.clock.Now()
		}
	}
	outs, err := e.Store.RecordReceipts(ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != len(rs) {
		t.Fatalf("%d outcomes for %d receipts", len(outs), len(rs))
	}
	return outs
}

func wantOutcomes(t *testing.T, what string, got []domain.ReceiptOutcome, want ...domain.ReceiptOutcome) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("%s: outcomes %v, want %v", what, got, want)
	}
}

// oneThenRepeats fails unless exactly one of outs is want and the others are repeats: the outcomes of
// one receipt raced by several callers.
func oneThenRepeats(t *testing.T, outs []domain.ReceiptOutcome, want domain.ReceiptOutcome) {
	t.Helper()
	n := 0
	for _, o := range outs {
		switch o {
		case want:
			n++
		case domain.ReceiptRepeat:
		default:
			t.Fatalf("outcome %q", o)
		}
	}
	if n != 1 {
		t.Fatalf("%d receipts %s, want 1", n, want)
	}
}

// Two receipts for one message in one batch apply in arrival order: the first final state wins,
// DELIVERED then UNDELIVERED as well as the reverse, each reported once.
func testBatchAppliesOneMessageInArrivalOrder(t *testing.T, e *env) {
	e.sent(t, "a")
	e.sent(t, "b")
	e.clock.Advance(time.Second)
	outs := e.receipts(t,
		domain.Receipt{ProviderID: "pid-a-1", Delivered: true, Code: "DELIVRD"},
		domain.Receipt{ProviderID: "pid-b-1", Code: "MK:0001"},
		domain.Receipt{MessageID: "a", Code: "UNDELIV"},
		domain.Receipt{ProviderID: "pid-b-1", Delivered: true, Code: "DELIVRD"})
	wantOutcomes(t, "batch", outs, domain.ReceiptApplied, domain.ReceiptApplied, domain.ReceiptRepeat, domain.ReceiptRepeat)
	if a := e.get(t, "a"); a.State != domain.StateDelivered || a.DeliveryCode != "DELIVRD" || !a.ReceiptAt.Equal(T0.Add(time.Second)) {
		t.Fatalf("a = %+v", a)
	}
	if b := e.get(t, "b"); b.State != domain.StateUndelivered || b.DeliveryCode != "MK:0001" {
		t.Fatalf("b = %+v", b)
	}
	e.wantDelivery(t, "a", verificationv1.DeliveryState_DELIVERY_STATE_DELIVERED)
	e.wantDelivery(t, "b", verificationv1.DeliveryState_DELIVERY_STATE_UNDELIVERED)
}

// One batch mixes a known message's receipt, one for ids no message has and one for a message not
// yet SENT: each gets its own outcome, and the parked one applies when its message is marked SENT.
func testBatchMixesKnownUnknownAndParked(t *testing.T, e *env) {
	e.sent(t, "known")
	e.queueFor(t, "queued", time.Hour)
	e.clock.Advance(time.Second)
	outs := e.receipts(t,
		domain.Receipt{ProviderID: "nobody", Delivered: true},
		domain.Receipt{MessageID: "queued", Code: "UNDELIV"},
		domain.Receipt{ProviderID: "pid-known-1", Delivered: true, Code: "DELIVRD"})
	wantOutcomes(t, "batch", outs, domain.ReceiptUnknown, domain.ReceiptParked, domain.ReceiptApplied)
	e.wantState(t, "known", domain.StateDelivered, "fake")
	e.wantState(t, "queued", domain.StateQueued, "")
	e.wantDelivery(t, "queued", noReport)
	d := e.dispatcher(newFake(0), 1)
	d.Caps = domain.Caps{}
	if n, err := d.Drain(ctx); err != nil || n != 1 {
		t.Fatalf("Drain = %d, %v", n, err)
	}
	if got := e.wantState(t, "queued", domain.StateUndelivered, "fake"); got.DeliveryCode != "UNDELIV" {
		t.Fatalf("queued after SENT = %+v", got)
	}
	e.wantDelivery(t, "queued", verificationv1.DeliveryState_DELIVERY_STATE_UNDELIVERED)
	e.wantDelivery(t, "known", verificationv1.DeliveryState_DELIVERY_STATE_DELIVERED)
}

// The same receipt several times in one batch applies once; two receipts parked under one key in
// one batch keep the first to arrive.
func testBatchDuplicatesApplyOnce(t *testing.T, e *env) {
	e.sent(t, "m1")
	e.queueFor(t, "q", time.Hour)
	r := domain.Receipt{ProviderID: "pid-m1-1", Delivered: true, Code: "DELIVRD"}
	outs := e.receipts(t, r, r, r)
	wantOutcomes(t, "duplicates", outs, domain.ReceiptApplied, domain.ReceiptRepeat, domain.ReceiptRepeat)
	e.wantDelivery(t, "m1", verificationv1.DeliveryState_DELIVERY_STATE_DELIVERED)
	outs = e.receipts(t,
		domain.Receipt{MessageID: "q", Code: "UNDELIV", At: T0},
		domain.Receipt{MessageID: "q", Delivered: true, Code: "DELIVRD", At: T0.Add(time.Second)})
	wantOutcomes(t, "parked twice", outs, domain.ReceiptParked, domain.ReceiptParked)
	d := e.dispatcher(newFake(0), 1)
	d.Caps = domain.Caps{}
	if n, err := d.Drain(ctx); err != nil || n != 1 {
		t.Fatalf("Drain = %d, %v", n, err)
	}
	if got := e.wantState(t, "q", domain.StateUndelivered, "fake"); got.DeliveryCode != "UNDELIV" {
		t.Fatalf("q = %+v, want the first parked receipt applied", got)
	}
}

// An UNDELIVERED that queues the message again and an earlier provider's DELIVERED after it, in one
// batch: the redelivery bars the first provider, so its DELIVERED counts as an earlier one's.
func testBatchRedeliversThenTakesEarlierDelivered(t *testing.T, e *env) {
	a, b := named("a"), named("b")
	d := e.redelivering(1, a, b)
	e.queueFor(t, "m1", time.Hour)
	drain(t, d)
	outs := e.receipts(t,
		domain.Receipt{Provider: "a", ProviderID: "a-m1", Code: "UNDELIV"},
		domain.Receipt{Provider: "a", MessageID: "m1", Delivered: true, Code: "DELIVRD"})
	wantOutcomes(t, "batch", outs, domain.ReceiptRedelivered, domain.ReceiptApplied)
	if got := e.wantState(t, "m1", domain.StateDelivered, "a"); got.Body != "" || !got.Redacted {
		t.Fatalf("held text not wiped: %+v", got)
	}
	drain(t, d)
	if b.callCount("m1") != 0 {
		t.Fatalf("b got a delivered message %d times", b.callCount("m1"))
	}
	e.wantDelivery(t, "m1", verificationv1.DeliveryState_DELIVERY_STATE_DELIVERED)
}

// Concurrent batches over the same messages, in opposite orders and with the same unknown ids to
// park (also in batches of unknown ids only, which lock no message), neither deadlock nor apply a
// receipt twice: each message is applied once and reported once.
func testConcurrentBatchesApplyEachOnce(t *testing.T, e *env) {
	const n, batches = 12, 6
	var forward, unknown []domain.Receipt
	for i := range n {
		id := fmt.Sprintf("m%02d", i)
		e.sent(t, id)
		forward = append(forward,
			domain.Receipt{Provider: "fake", ProviderID: "pid-" + id + "-1", Delivered: true, Code: "DELIVRD", At: e.clock.Now()},
			domain.Receipt{Provider: "fake", ProviderID: fmt.Sprintf("nobody-%d", i), At: e.clock.Now()})
	}
	for i := range 200 {
		unknown = append(unknown, domain.Receipt{Provider: "fake", ProviderID: fmt.Sprintf("stranger-%d", i), At: e.clock.Now()})
	}
	outs := make([][]domain.ReceiptOutcome, 2*batches)
	errs := make([]error, len(outs))
	var wg sync.WaitGroup
	for i := range outs {
		batch := forward
		if i >= batches {
			batch = unknown
		}
		if i%2 == 1 {
			batch = slices.Clone(batch)
			slices.Reverse(batch)
		}
		wg.Go(func() { outs[i], errs[i] = e.Store.RecordReceipts(ctx, batch) })
	}
	wg.Wait()
	count := map[domain.ReceiptOutcome]int{}
	for i, o := range outs {
		if errs[i] != nil {
			t.Fatalf("batch %d: %v", i, errs[i])
		}
		for _, out := range o {
			count[out]++
		}
	}
	if want := (map[domain.ReceiptOutcome]int{domain.ReceiptApplied: n, domain.ReceiptRepeat: n * (batches - 1),
		domain.ReceiptUnknown: (n + len(unknown)) * batches}); !maps.Equal(count, want) {
		t.Fatalf("outcomes %v, want %v", count, want)
	}
	for i := range n {
		id := fmt.Sprintf("m%02d", i)
		e.wantState(t, id, domain.StateDelivered, "fake")
		e.wantDelivery(t, id, verificationv1.DeliveryState_DELIVERY_STATE_DELIVERED)
	}
}
