package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// testMarkVerifiedBatch: one batch mixes a request applied before (its retry), a redelivery of it
// under a new request id, new requests, one order twice, an unknown order, a stale submission, a
// request id reused for another request and an invalid request id. Each item gets the single call's
// answer, the bad ones fail alone, and the batch repeated changes nothing twice.
func testMarkVerifiedBatch(t *testing.T, e *env) {
	ctx := context.Background()
	ids := make([]string, 4)
	for i := range ids {
		ids[i] = e.create(t, firstFiling())
		e.submit(t, ids[i])
	}
	before, err := e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "mv-0", OrderId: ids[0], Submission: 1})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	reqs := []*filingv1.MarkVerifiedRequest{
		{RequestId: "mv-0", OrderId: ids[0], Submission: 1},                                                // 0: applied before: its answer again
		{RequestId: "mv-0-again", OrderId: ids[0], Submission: 1},                                          // 1: a redelivery: already verified
		{RequestId: "mv-1", OrderId: ids[1], Submission: 1},                                                // 2: new
		{RequestId: "mv-1-twin", OrderId: ids[1], Submission: 1},                                           // 3: the same order later in the batch
		{RequestId: "mv-x", OrderId: "ord_missing", Submission: 1},                                         // 4: unknown order
		{RequestId: "mv-2", OrderId: ids[2], Submission: 2},                                                // 5: stale submission
		{RequestId: "mv-0", OrderId: ids[3], Submission: 1},                                                // 6: request id of another request
		{RequestId: strings.Repeat("r", idempotency.MaxRequestIDLength+1), OrderId: ids[3], Submission: 1}, // 7
		{RequestId: "mv-3", OrderId: ids[3], Submission: 1},                                                // 8: new, after the bad ones
	}
	check := func(round int, res []batch.Result[*filingv1.Order]) {
		t.Helper()
		if len(res) != len(reqs) {
			t.Fatalf("round %d: %d results for %d requests", round, len(res), len(reqs))
		}
		for _, i := range []int{0, 1} {
			if res[i].Err != nil || !proto.Equal(res[i].Value, before.GetOrder()) {
				t.Errorf("round %d item %d: %v %v, want the first answer", round, i, res[i].Value, res[i].Err)
			}
		}
		for _, i := range []int{2, 3, 8} {
			if res[i].Err != nil || res[i].Value.GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW {
				t.Errorf("round %d item %d: %v %v, want UNDER_REVIEW", round, i, res[i].Value, res[i].Err)
			}
		}
		if !proto.Equal(res[2].Value, res[3].Value) || !proto.Equal(res[8].Value, e.get(t, ids[3])) {
			t.Errorf("round %d: answers differ from the orders they changed", round)
		}
		wantReason(t, res[4].Err, domain.ReasonOrderNotFound)
		wantReason(t, res[5].Err, domain.ReasonStaleSubmission)
		wantError(t, res[6].Err, errs.KindAlreadyExists, errs.RequestIDReused.Reason)
		wantError(t, res[7].Err, errs.KindInvalidArgument, errs.Reason(idempotency.CheckRequestID(reqs[7].RequestId)))
	}
	first, err := e.Store.MarkVerifiedBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	check(1, first)
	rows := len(e.outbox(t))
	e.clock.Advance(time.Minute)
	again, err := e.Store.MarkVerifiedBatch(ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	check(2, again)
	for _, i := range []int{2, 8} {
		if !proto.Equal(first[i].Value, again[i].Value) {
			t.Errorf("item %d repeated: %v, want the first answer %v", i, again[i].Value, first[i].Value)
		}
	}
	for _, id := range []string{ids[0], ids[1], ids[3]} {
		if h := e.get(t, id).GetHistory(); len(h) != 3 {
			t.Errorf("order %s history = %v, want created, submitted and one verification", id, h)
		}
	}
	if o := e.get(t, ids[2]); o.GetState() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
		t.Errorf("the order of the stale item = %v, want it untouched", o.GetState())
	}
	if n := len(e.outbox(t)); n != rows {
		t.Errorf("the repeated batch wrote %d outbox rows", n-rows)
	}
}

// testReturnOrderBatch: returned orders and their phone locks in one batch, beside a request for a
// draft, never submitted (refused alone); the batch repeated returns the same answers and
// an order returned before replays as the single call would.
func testReturnOrderBatch(t *testing.T, e *env) {
	ctx := context.Background()
	a, b, draft := e.create(t, firstFiling()), e.create(t, firstFiling()), e.create(t, firstFiling())
	e.submit(t, a)
	e.submit(t, b)
	until := e.clock.Now().Add(time.Hour)
	reqs := []*filingv1.ReturnOrderRequest{
		{RequestId: "ret-a", OrderId: a, Submission: 1, Reason: filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT},
		{RequestId: "ret-draft", OrderId: draft, Submission: 1, Reason: filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT},
		{RequestId: "ret-b", OrderId: b, Submission: 1, Reason: filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS,
			PhoneLocks: []*filingv1.PhoneLock{{Phone: "+8613812345678", Until: timestamppb.New(until)}}},
	}
	for round := range 2 {
		res, err := e.Store.ReturnOrderBatch(ctx, reqs)
		if err != nil || len(res) != 3 {
			t.Fatalf("round %d: %v, %v", round, res, err)
		}
		if res[0].Err != nil || res[0].Value.GetState() != filingv1.OrderState_ORDER_STATE_RETURNED ||
			res[0].Value.GetReturnReason() != filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT {
			t.Errorf("round %d: a = %v %v", round, res[0].Value, res[0].Err)
		}
		wantReason(t, res[1].Err, domain.ReasonStaleSubmission) // a draft was never submitted
		if res[2].Err != nil || res[2].Value.GetReturnReason() != filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS {
			t.Errorf("round %d: b = %v %v", round, res[2].Value, res[2].Err)
		}
		e.clock.Advance(time.Second)
	}
	single, err := e.Store.ReturnOrder(ctx, reqs[0])
	if err != nil || single.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_RETURNED || len(single.GetOrder().GetHistory()) != 3 {
		t.Errorf("the single call after the batch: %v %v", single, err)
	}
	wantReason(t, e.trySubmit(a), domain.ReasonPhoneLocked) // b's lock, carried by the batch
	if empty, err := e.Store.ReturnOrderBatch(ctx, nil); err != nil || len(empty) != 0 {
		t.Errorf("an empty batch: %v %v", empty, err)
	}
}
