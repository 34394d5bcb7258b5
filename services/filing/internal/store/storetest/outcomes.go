package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

func testMarkVerifiedIdempotentAndStale(t *testing.T, e *env) {
	ctx := context.Background()
	id := e.create(t, firstFiling())
	e.submit(t, id)
	_, err := e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "stale", OrderId: id, Submission: 2})
	wantReason(t, err, domain.ReasonStaleSubmission)
	first, err := e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "mv-1", OrderId: id, Submission: 1})
	if err != nil || first.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW {
		t.Fatalf("mark verified: %v %v", first, err)
	}
	// A redelivery with another request id finds the order already verified for this submission.
	e.clock.Advance(time.Minute)
	again, err := e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "mv-2", OrderId: id, Submission: 1})
	if err != nil || !proto.Equal(first.GetOrder(), again.GetOrder()) {
		t.Fatalf("second mark verified: %v, unchanged=%v", err, proto.Equal(first.GetOrder(), again.GetOrder()))
	}
	_, err = e.Store.ReturnOrder(ctx, &filingv1.ReturnOrderRequest{RequestId: "r", OrderId: id, Submission: 1,
		Reason: filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT})
	wantReason(t, err, domain.ReasonInvalidStateTransition)
}

func testReturnOrderIdempotentAndResubmit(t *testing.T, e *env) {
	ctx := context.Background()
	id := e.create(t, firstFiling())
	e.submit(t, id)
	ret := &filingv1.ReturnOrderRequest{RequestId: "ret-1", OrderId: id, Submission: 1,
		Reason: filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS}
	first, err := e.Store.ReturnOrder(ctx, ret)
	if err != nil || first.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_RETURNED ||
		first.GetOrder().GetReturnReason() != filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS {
		t.Fatalf("return: %v %v", first, err)
	}
	ret.RequestId = "ret-2"
	again, err := e.Store.ReturnOrder(ctx, ret)
	if err != nil || !proto.Equal(first.GetOrder(), again.GetOrder()) {
		t.Fatalf("second return: %v", err)
	}
	// Corrected and submitted again: a new submission with a new window; the old one is stale.
	e.clock.Advance(time.Hour)
	o := e.submit(t, id)
	if o.GetSubmission() != 2 || !o.GetDeadlineAt().AsTime().Equal(T0.Add(25*time.Hour)) ||
		o.GetReturnReason() != filingv1.ReturnReason_RETURN_REASON_UNSPECIFIED {
		t.Fatalf("resubmitted = %v", o)
	}
	ret.RequestId = "ret-3"
	_, err = e.Store.ReturnOrder(ctx, ret)
	wantReason(t, err, domain.ReasonStaleSubmission)
	_, err = e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "mv-old", OrderId: id, Submission: 1})
	wantReason(t, err, domain.ReasonStaleSubmission)
	if n := len(e.outbox(t)); n != 4 {
		t.Fatalf("outbox rows %d, want 4 (two per submission)", n)
	}
}

func testConcurrentMarkVerifiedAndCancel(t *testing.T, e *env) {
	ctx := context.Background()
	for round := range 5 {
		id := e.create(t, firstFiling())
		e.submit(t, id)
		var wg sync.WaitGroup
		var verifyErr, cancelErr error
		wg.Go(func() {
			_, verifyErr = e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: fmt.Sprintf("mv-%d", round), OrderId: id, Submission: 1})
		})
		wg.Go(func() {
			_, cancelErr = e.Store.CancelOrder(ctx, PortalA, &filingv1.CancelOrderRequest{RequestId: fmt.Sprintf("c-%d", round), OrderId: id})
		})
		wg.Wait()
		o := e.get(t, id)
		switch {
		case verifyErr == nil && cancelErr == nil:
			t.Fatalf("both MarkVerified and CancelOrder succeeded: %v", o)
		case verifyErr == nil:
			wantReason(t, cancelErr, domain.ReasonInvalidStateTransition)
			if o.GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW {
				t.Fatalf("verified order = %v", o)
			}
		default:
			if cancelErr != nil {
				t.Fatalf("cancel: %v, verify: %v", cancelErr, verifyErr)
			}
			wantReason(t, verifyErr, domain.ReasonInvalidStateTransition)
			if o.GetState() != filingv1.OrderState_ORDER_STATE_CANCELLED {
				t.Fatalf("cancelled order = %v", o)
			}
		}
		if len(o.GetHistory()) != 3 {
			t.Fatalf("history = %v, want created, submitted and one outcome", o.GetHistory())
		}
	}
	// Two rows per submission, and two cancel calls for each cancel that won.
	cancels := 0
	for _, o := range e.outbox(t) {
		if o.target == convert.TargetCancelSession {
			cancels++
		}
	}
	if n := len(e.outbox(t)); n != 10+2*cancels {
		t.Fatalf("outbox rows %d with %d cancels", n, cancels)
	}
}

// testConcurrentVerificationOutcomes sends a burst of MarkVerified and ReturnOrder calls at once, as
// verification's relay does (the PostgreSQL store commits them in batches): repeats of one request,
// redeliveries under a new request_id, request_ids reused for another request, stale submissions
// and unknown orders. Each call gets the answer it would get alone, each order changes once, and
// every answer is the order as a later GetOrder shows it.
func testConcurrentVerificationOutcomes(t *testing.T, e *env) {
	ctx := context.Background()
	const n = 50
	ids := make([]string, n)
	for i := range ids {
		ids[i] = e.create(t, firstFiling())
		e.submit(t, ids[i])
	}
	// Verified before the burst: in the burst their request ids are retries.
	pre := map[int]*filingv1.Order{}
	for i := 0; i < n; i += 10 {
		r, err := e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: fmt.Sprintf("pre-%d", i), OrderId: ids[i], Submission: 1})
		if err != nil {
			t.Fatal(err)
		}
		pre[i] = r.GetOrder()
	}
	e.clock.Advance(time.Minute)
	burstAt := e.clock.Now()

	type answer = func() (*filingv1.Order, error)
	markVerified := func(id, requestID string, sub int32) answer {
		return func() (*filingv1.Order, error) {
			r, err := e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: requestID, OrderId: id, Submission: sub})
			return r.GetOrder(), err
		}
	}
	returnReason := func(i int) filingv1.ReturnReason {
		if i%4 == 1 {
			return filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS
		}
		return filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT
	}
	returnOrder := func(id, requestID string, reason filingv1.ReturnReason) answer {
		return func() (*filingv1.Order, error) {
			r, err := e.Store.ReturnOrder(ctx, &filingv1.ReturnOrderRequest{RequestId: requestID, OrderId: id, Submission: 1, Reason: reason})
			return r.GetOrder(), err
		}
	}
	// Even orders pass verification, odd ones are returned.
	outcome := func(i int, requestID string) answer {
		if i%2 == 0 {
			return markVerified(ids[i], requestID, 1)
		}
		return returnOrder(ids[i], requestID, returnReason(i))
	}
	type call struct {
		order      int // index in ids; -1: an unknown order
		run        answer
		kind       errs.Kind
		wantReason string // "": succeeds
	}
	var calls []call
	for i := range n {
		if pre[i] != nil {
			calls = append(calls,
				call{order: i, run: markVerified(ids[i], fmt.Sprintf("pre-%d", i), 1)},
				call{order: i, run: markVerified(ids[i], fmt.Sprintf("pre-%d", i), 2),
					kind: errs.RequestIDReused.Kind, wantReason: errs.RequestIDReused.Reason},
				call{order: i, run: returnOrder(ids[i], fmt.Sprintf("late-%d", i), filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT),
					kind: errs.KindFailedPrecondition, wantReason: domain.ReasonInvalidStateTransition})
			continue
		}
		for range 3 {
			calls = append(calls, call{order: i, run: outcome(i, fmt.Sprintf("out-%d", i))})
		}
		if i%5 == 3 { // a redelivery under a new request_id finds the outcome applied, or applies it
			calls = append(calls, call{order: i, run: outcome(i, fmt.Sprintf("again-%d", i))})
		}
		if i%7 == 1 {
			calls = append(calls, call{order: i, run: markVerified(ids[i], fmt.Sprintf("stale-%d", i), 2),
				kind: errs.KindFailedPrecondition, wantReason: domain.ReasonStaleSubmission})
		}
	}
	for k := range 3 {
		calls = append(calls, call{order: -1, run: markVerified(fmt.Sprintf("ord_missing%d", k), fmt.Sprintf("missing-%d", k), 1),
			kind: errs.KindNotFound, wantReason: domain.ReasonOrderNotFound})
	}

	type result struct {
		o   *filingv1.Order
		err error
	}
	results := make([]result, len(calls))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for j, c := range calls {
		wg.Go(func() {
			<-start
			o, err := c.run()
			results[j] = result{o, err}
		})
	}
	close(start)
	wg.Wait()

	final := make([]*filingv1.Order, n)
	for i, id := range ids {
		final[i] = e.get(t, id)
		o := final[i]
		h := o.GetHistory()
		if len(h) != 3 {
			t.Fatalf("order %d: history %v, want created, submitted and one outcome", i, h)
		}
		last := h[2]
		wantAt := burstAt
		if pre[i] != nil {
			wantAt = T0
		}
		if last.GetActor() != domain.ActorVerification || last.GetFrom() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION ||
			last.GetTo() != o.GetState() || !last.GetAt().AsTime().Equal(wantAt) || !o.GetUpdateTime().AsTime().Equal(wantAt) {
			t.Fatalf("order %d: outcome %v in %v", i, last, o)
		}
		if i%2 == 0 || pre[i] != nil {
			if o.GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW || last.GetReason() != "all verifiers passed" ||
				o.GetReturnReason() != filingv1.ReturnReason_RETURN_REASON_UNSPECIFIED {
				t.Fatalf("order %d: %v, want verified", i, o)
			}
		} else if o.GetState() != filingv1.OrderState_ORDER_STATE_RETURNED || o.GetReturnReason() != returnReason(i) ||
			last.GetReason() != domain.ReturnReason(returnReason(i)).String() {
			t.Fatalf("order %d: %v, want returned with %s", i, o, returnReason(i))
		}
		if pre[i] != nil && !proto.Equal(pre[i], o) {
			t.Fatalf("order %d changed after its outcome: %v, was %v", i, o, pre[i])
		}
	}
	for j, c := range calls {
		r := results[j]
		if c.wantReason != "" {
			if r.o != nil {
				t.Fatalf("call %d on order %d: answer %v with error %v", j, c.order, r.o, r.err)
			}
			wantError(t, r.err, c.kind, c.wantReason)
			continue
		}
		if r.err != nil {
			t.Fatalf("call %d on order %d: %v", j, c.order, r.err)
		}
		if !proto.Equal(r.o, final[c.order]) {
			t.Fatalf("call %d on order %d answered %v, GetOrder shows %v", j, c.order, r.o, final[c.order])
		}
	}
	// Retried later, each request gets its stored answer and changes nothing.
	e.clock.Advance(time.Minute)
	for i := range n {
		requestID := fmt.Sprintf("out-%d", i)
		if pre[i] != nil {
			requestID = fmt.Sprintf("pre-%d", i)
		}
		o, err := outcome(i, requestID)() // pre orders are even: MarkVerified as before the burst
		if err != nil || !proto.Equal(o, final[i]) {
			t.Fatalf("retry of %s: %v %v, want %v", requestID, o, err, final[i])
		}
	}
	for i, id := range ids {
		if o := e.get(t, id); !proto.Equal(o, final[i]) {
			t.Fatalf("order %d changed by retries: %v", i, o)
		}
	}
}
