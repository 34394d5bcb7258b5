package storetest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

func testSubmitWritesOutbox(t *testing.T, e *env) {
	id := e.create(t, firstFiling())
	o := e.submit(t, id)
	if o.GetState() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION || o.GetSubmission() != 1 {
		t.Fatalf("state %s submission %d", o.GetState(), o.GetSubmission())
	}
	deadline := T0.Add(24 * time.Hour)
	if !o.GetDeadlineAt().AsTime().Equal(deadline) {
		t.Fatalf("deadline %v, want %v", o.GetDeadlineAt().AsTime(), deadline)
	}
	if len(o.GetVerifiers()) != 2 || o.GetVerifiers()[0].GetPhoneMasked() != "138****5678" {
		t.Fatalf("verifiers = %v", o.GetVerifiers())
	}
	if p := o.GetSpec().GetPrincipal(); p.GetPhone() != "138****5678" || p.GetIdNumber() != "1****************4" {
		t.Fatalf("principal not masked: %v", p)
	}
	rows := e.outbox(t)
	if len(rows) != 2 || rows[0].target != convert.TargetOpenSession || rows[1].target != convert.TargetScheduleDeadline {
		t.Fatalf("outbox = %v", rows)
	}
	var open verificationv1.OpenSessionRequest
	if err := proto.Unmarshal(rows[0].payload, &open); err != nil {
		t.Fatal(err)
	}
	if open.GetRequestId() != fmt.Sprintf("filing:open-session:%s:1", id) || open.GetOrderId() != id || open.GetSubmission() != 1 ||
		!open.GetDeadlineAt().AsTime().Equal(deadline) || open.GetLocale() != "zh-CN" {
		t.Fatalf("open session = %v", &open)
	}
	v := open.GetVerifiers()
	if len(v) != 2 || v[0].GetPhone() != "+8613812345678" || len(v[0].GetRoles()) != 2 || v[0].GetIdTails()[0] != "074514" ||
		v[1].GetPhone() != "+8613912345678" || v[1].GetIdTails()[0] != "31002X" {
		t.Fatalf("verifier specs = %v", v)
	}
	var sched deadlinev1.ScheduleDeadlineRequest
	if err := proto.Unmarshal(rows[1].payload, &sched); err != nil {
		t.Fatal(err)
	}
	if sched.GetRequestId() != fmt.Sprintf("filing:schedule-deadline:%s:1", id) || !sched.GetDueTime().AsTime().Equal(deadline) ||
		sched.GetSubmission() != 1 {
		t.Fatalf("schedule = %v", &sched)
	}
	if e.Woken() != 1 {
		t.Fatalf("relay woken %d times, want 1", e.Woken())
	}
	h := o.GetHistory()
	if len(h) != 2 || h[1].GetFrom() != filingv1.OrderState_ORDER_STATE_DRAFT || h[1].GetActor() != PortalA.HistoryName() {
		t.Fatalf("history = %v", h)
	}
	// A second submit of the same order is a wrong state.
	_, err := e.Store.SubmitOrder(context.Background(), PortalA, &filingv1.SubmitOrderRequest{RequestId: "again", OrderId: id})
	wantReason(t, err, domain.ReasonInvalidStateTransition)
}

func testSubmitRetrySameRequestID(t *testing.T, e *env) {
	id := e.create(t, firstFiling())
	req := &filingv1.SubmitOrderRequest{RequestId: "submit-1", OrderId: id}
	a, err := e.Store.SubmitOrder(context.Background(), PortalA, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Store.SubmitOrder(context.Background(), PortalA, req)
	if err != nil || !proto.Equal(a, b) {
		t.Fatalf("retry: %v, equal=%v", err, proto.Equal(a, b))
	}
	if n := len(e.outbox(t)); n != 2 {
		t.Fatalf("outbox rows %d after retry, want 2", n)
	}
}

func testConcurrentSubmitOneSubmission(t *testing.T, e *env) {
	id := e.create(t, firstFiling())
	const n = 8
	var wg sync.WaitGroup
	errsCh := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := e.Store.SubmitOrder(context.Background(), PortalA, &filingv1.SubmitOrderRequest{RequestId: fmt.Sprintf("c-%d", i), OrderId: id})
			errsCh <- err
		})
	}
	wg.Wait()
	close(errsCh)
	ok := 0
	for err := range errsCh {
		if err == nil {
			ok++
		} else if errs.Reason(err) != domain.ReasonInvalidStateTransition {
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d submits succeeded, want 1", ok)
	}
	if o := e.get(t, id); o.GetSubmission() != 1 || len(o.GetVerifiers()) != 2 || len(o.GetHistory()) != 2 {
		t.Fatalf("order after race: %v", o)
	}
	if rows := e.outbox(t); len(rows) != 2 {
		t.Fatalf("outbox rows %d, want 2", len(rows))
	}
}

func testStoredSpecFailingTheRulesAtSubmit(t *testing.T, e *env) {
	ctx := context.Background()
	subject := e.approve(t, firstFiling())
	// A stored spec the rules refuse (here: subject_changed on ADD_ACCESS, which would have let a new
	// principal number into the record) is the order's state at submit: the request has no spec.
	spec := mustNormalize(t, domain.Spec{FilingType: domain.AddAccess, SubjectID: subject, Principal: principalA("13600000000"),
		Websites: []domain.Website{{Domain: "a.cn", Person: principalA("13812345678")}}})
	spec.SubjectChanged = true
	resp, err := e.Store.CreateOrder(ctx, PortalA, &filingv1.CreateOrderRequest{}, spec)
	if err != nil {
		t.Fatal(err)
	}
	err = e.trySubmit(resp.GetOrder().GetOrderId())
	wantError(t, err, errs.KindFailedPrecondition, domain.ReasonOrderInvalid)
	if !strings.Contains(err.Error(), "spec.subject_changed") {
		t.Fatalf("message does not name the field: %v", err)
	}
}
