// Package storetest is the one behaviour suite of filing's storage, run against every engine (the
// PostgreSQL store and memstore): Run drives the use cases of package app on an engine, the way the
// gRPC handlers do, and observes the calls owed to other services through its outbox queue, so both
// engines are held to the same answers, outbox rows, history and races.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// Engine is one engine under test, built by the factory on the given fake clock with wake as the
// function it calls after a change that wrote outbox rows (the relay's Wake).
type Engine struct {
	Engine app.Engine
	// Outbox is the queue the engine writes its calls to (Pending shows them).
	Outbox outbox.Queue
}

// T0 is the fake clock's start.
var T0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

// Run runs every behaviour test, each on a fresh engine.
func Run(t *testing.T, newEngine func(t *testing.T, clk *clock.Fake, wake func()) Engine) {
	tests := map[string]func(t *testing.T, e *env){
		"SubmitWritesOutbox":                testSubmitWritesOutbox,
		"SubmitRetrySameRequestID":          testSubmitRetrySameRequestID,
		"MarkVerifiedIdempotentAndStale":    testMarkVerifiedIdempotentAndStale,
		"ReturnOrderIdempotentAndResubmit":  testReturnOrderIdempotentAndResubmit,
		"ConcurrentSubmitOneSubmission":     testConcurrentSubmitOneSubmission,
		"ConcurrentMarkVerifiedAndCancel":   testConcurrentMarkVerifiedAndCancel,
		"ConcurrentVerificationOutcomes":    testConcurrentVerificationOutcomes,
		"CancelAwaitingEnqueuesCancels":     testCancelAwaitingEnqueuesCancels,
		"ApprovedRecordAndPhoneChangeRule":  testApprovedRecordAndPhoneChangeRule,
		"AddAccessCannotChangeThePrincipal": testAddAccessCannotChangeThePrincipal,
		"IDNumberMustMatchTheRecord":        testIDNumberMustMatchTheRecord,
		"WebsitesAgainstTheRecord":          testWebsitesAgainstTheRecord,
		"UnknownSubjectCodes":               testUnknownSubjectCodes,
		"StoredSpecFailingTheRulesAtSubmit": testStoredSpecFailingTheRulesAtSubmit,
		"UpdateOnlyInDraftOrReturned":       testUpdateOnlyInDraftOrReturned,
		"RequestIDReusedWithAnotherRequest": testRequestIDReusedWithAnotherRequest,
		"ListOrdersPages":                   testListOrdersPages,
		"ListOrdersSameInstant":             testListOrdersSameInstant,
		"AnswersAreCopies":                  testAnswersAreCopies,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := &env{clock: clock.NewFake(T0)}
			eng := newEngine(t, e.clock, func() { e.woken.Add(1) })
			// The default app.Config: 24 h window, zh-CN, default rules.
			e.Store, e.Outbox = app.New(eng.Engine, app.Config{}), eng.Outbox
			test(t, e)
		})
	}
}

// Valid GB 11643 numbers.
const (
	idA = "110101199003074514"
	idB = "11010519491231002X"
)

type env struct {
	Store  *app.App // the use cases on the engine under test
	Outbox outbox.Queue
	clock  *clock.Fake
	woken  atomic.Int64
}

// Woken counts the engine's wake calls so far.
func (e *env) Woken() int { return int(e.woken.Load()) }

func firstFiling() domain.Spec {
	return domain.Spec{FilingType: domain.FirstFiling, SubjectName: "示例公司",
		Principal: &domain.Person{Name: "张三", IDType: iddoc.ResidentIDCard, IDNumber: idA, Phone: "13812345678"},
		Websites: []domain.Website{
			{Domain: "a.cn", Person: &domain.Person{Name: "张三", IDType: iddoc.ResidentIDCard, IDNumber: idA, Phone: "+86 138 1234 5678"}},
			{Domain: "b.cn", Person: &domain.Person{Name: "李四", IDType: iddoc.ResidentIDCard, IDNumber: idB, Phone: "13912345678"}},
		}}
}

func (e *env) create(t *testing.T, spec domain.Spec) string {
	t.Helper()
	resp, err := e.Store.CreateOrder(context.Background(), &filingv1.CreateOrderRequest{RequestId: domain.NewID("r")}, mustNormalize(t, spec))
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetOrder().GetOrderId()
}

func (e *env) submit(t *testing.T, id string) *filingv1.Order {
	t.Helper()
	resp, err := e.Store.SubmitOrder(context.Background(), &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: id})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return resp.GetOrder()
}

func (e *env) trySubmit(id string) error {
	_, err := e.Store.SubmitOrder(context.Background(), &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: id})
	return err
}

func (e *env) get(t *testing.T, id string) *filingv1.Order {
	t.Helper()
	o, err := e.Store.GetOrder(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

type outboxRow struct {
	target  string
	payload []byte
}

func (e *env) outbox(t *testing.T) []outboxRow {
	t.Helper()
	rows, err := e.Outbox.Pending(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]outboxRow, len(rows))
	for i, r := range rows {
		out[i] = outboxRow{target: r.Target, payload: r.Payload}
	}
	return out
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	if got := errs.Reason(err); got != reason {
		t.Fatalf("err = %v (reason %q), want reason %q", err, got, reason)
	}
}

func wantError(t *testing.T, err error, kind errs.Kind, reason string) {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) || e.Kind != kind || e.Reason != reason {
		t.Fatalf("err = %#v, want kind %d reason %s", err, kind, reason)
	}
}

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
	if len(h) != 2 || h[1].GetFrom() != filingv1.OrderState_ORDER_STATE_DRAFT || h[1].GetActor() != "portal" {
		t.Fatalf("history = %v", h)
	}
	// A second submit of the same order is a wrong state.
	_, err := e.Store.SubmitOrder(context.Background(), &filingv1.SubmitOrderRequest{RequestId: "again", OrderId: id})
	wantReason(t, err, domain.ReasonInvalidStateTransition)
}

func testSubmitRetrySameRequestID(t *testing.T, e *env) {
	id := e.create(t, firstFiling())
	req := &filingv1.SubmitOrderRequest{RequestId: "submit-1", OrderId: id}
	a, err := e.Store.SubmitOrder(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Store.SubmitOrder(context.Background(), req)
	if err != nil || !proto.Equal(a, b) {
		t.Fatalf("retry: %v, equal=%v", err, proto.Equal(a, b))
	}
	if n := len(e.outbox(t)); n != 2 {
		t.Fatalf("outbox rows %d after retry, want 2", n)
	}
}

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

func testConcurrentSubmitOneSubmission(t *testing.T, e *env) {
	id := e.create(t, firstFiling())
	const n = 8
	var wg sync.WaitGroup
	errsCh := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := e.Store.SubmitOrder(context.Background(), &filingv1.SubmitOrderRequest{RequestId: fmt.Sprintf("c-%d", i), OrderId: id})
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

func testCancelAwaitingEnqueuesCancels(t *testing.T, e *env) {
	ctx := context.Background()
	id := e.create(t, firstFiling())
	e.submit(t, id)
	resp, err := e.Store.CancelOrder(ctx, &filingv1.CancelOrderRequest{RequestId: "c", OrderId: id, Reason: "changed my mind"})
	if err != nil || resp.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_CANCELLED {
		t.Fatalf("cancel: %v %v", resp, err)
	}
	rows := e.outbox(t)
	if len(rows) != 4 || rows[2].target != convert.TargetCancelSession || rows[3].target != convert.TargetCancelDeadline {
		t.Fatalf("outbox = %v", rows)
	}
	var cs verificationv1.CancelSessionRequest
	if err := proto.Unmarshal(rows[2].payload, &cs); err != nil || cs.GetRequestId() != fmt.Sprintf("filing:cancel-session:%s:1", id) {
		t.Fatalf("cancel session = %v %v", &cs, err)
	}
	_, err = e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "late", OrderId: id, Submission: 1})
	wantReason(t, err, domain.ReasonInvalidStateTransition)
	// A draft cancels without calls to other services.
	draft := e.create(t, firstFiling())
	if _, err := e.Store.CancelOrder(ctx, &filingv1.CancelOrderRequest{OrderId: draft}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.outbox(t)); n != 4 {
		t.Fatalf("outbox rows %d, want 4", n)
	}
}

// approve walks a first filing to APPROVED and returns the new subject id.
func (e *env) approve(t *testing.T, spec domain.Spec) string {
	t.Helper()
	ctx := context.Background()
	id := e.create(t, spec)
	o := e.submit(t, id)
	if o.GetState() == filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
		if _, err := e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{OrderId: id, Submission: o.GetSubmission()}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := e.Store.RecordReviewOutcome(ctx, &filingv1.RecordReviewOutcomeRequest{OrderId: id,
		Outcome: filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED, Comment: "ok"})
	if err != nil || resp.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_APPROVED {
		t.Fatalf("approve: %v %v", resp, err)
	}
	return resp.GetOrder().GetSpec().GetSubjectId()
}

func testApprovedRecordAndPhoneChangeRule(t *testing.T, e *env) {
	ctx := context.Background()
	subject := e.approve(t, firstFiling())
	if subject == "" {
		t.Fatal("first filing approval did not name a subject")
	}
	principal := func(ph string) *domain.Person {
		return &domain.Person{Name: "张三", IDType: iddoc.ResidentIDCard, IDNumber: idA, Phone: ph}
	}
	// DEREGISTER_SUBJECT with a new principal number is refused at submit.
	dereg := e.create(t, domain.Spec{FilingType: domain.DeregisterSubject, SubjectID: subject, Principal: principal("13600000000")})
	_, err := e.Store.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{OrderId: dereg})
	wantReason(t, err, domain.ReasonPhoneChangeRequiresChangeFiling)
	// CHANGE_FILING may carry the new number; approved, it updates the record.
	e.approve(t, domain.Spec{FilingType: domain.ChangeFiling, SubjectID: subject, SubjectChanged: true, Principal: principal("13600000000")})
	// Now the deregistration with the new number passes the rule (after correction of the order).
	if _, err := e.Store.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{OrderId: dereg}, mustNormalize(t, domain.Spec{
		FilingType: domain.DeregisterSubject, SubjectID: subject, Principal: principal("13600000000")})); err != nil {
		t.Fatal(err)
	}
	if o := e.submit(t, dereg); o.GetState() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION || len(o.GetVerifiers()) != 1 {
		t.Fatalf("deregistration = %v", o)
	}
	// CHANGE_ACCESS: nobody verifies, straight to review, nothing sent.
	before := len(e.outbox(t))
	ca := e.create(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: subject})
	if o := e.submit(t, ca); o.GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW || o.GetDeadlineAt() != nil {
		t.Fatalf("change access = %v", o)
	}
	if after := len(e.outbox(t)); after != before {
		t.Fatalf("outbox grew from %d to %d for an order nobody verifies", before, after)
	}
	// Website not in the record.
	aa := e.create(t, domain.Spec{FilingType: domain.AddAccess, SubjectID: subject, Websites: []domain.Website{
		{Domain: "c.cn", Person: principal("13600000000")}}})
	_, err = e.Store.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{OrderId: aa})
	wantReason(t, err, domain.ReasonWebsiteNotInRecord)
}

func mustNormalize(t *testing.T, s domain.Spec) domain.Spec {
	t.Helper()
	n, err := domain.Rules{}.Normalize(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func testUpdateOnlyInDraftOrReturned(t *testing.T, e *env) {
	id := e.create(t, firstFiling())
	e.submit(t, id)
	_, err := e.Store.UpdateOrder(context.Background(), &filingv1.UpdateOrderRequest{OrderId: id}, mustNormalize(t, firstFiling()))
	wantReason(t, err, domain.ReasonInvalidStateTransition)
	_, err = e.Store.GetOrder(context.Background(), "ord_missing")
	wantReason(t, err, domain.ReasonOrderNotFound)
}

func testListOrdersPages(t *testing.T, e *env) {
	ctx := context.Background()
	var ids []string
	for range 5 {
		ids = append(ids, e.create(t, firstFiling()))
		e.clock.Advance(time.Second)
	}
	e.submit(t, ids[1])
	var got []string
	token := ""
	for {
		page, next, err := e.Store.ListOrders(ctx, domain.StateUnspecified, 2, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			got = append(got, o.GetOrderId())
		}
		if next == "" {
			break
		}
		token = next
	}
	want := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages = %v, want %v", got, want)
	}
	awaiting, next, err := e.Store.ListOrders(ctx, domain.StateAwaitingVerification, 0, "")
	if err != nil || len(awaiting) != 1 || awaiting[0].GetOrderId() != ids[1] || next != "" || len(awaiting[0].GetVerifiers()) != 2 {
		t.Fatalf("filtered = %v %q %v", awaiting, next, err)
	}
	_, _, err = e.Store.ListOrders(ctx, domain.StateDraft, 2, token)
	wantReason(t, err, "INVALID_PAGE_TOKEN")
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
			_, cancelErr = e.Store.CancelOrder(ctx, &filingv1.CancelOrderRequest{RequestId: fmt.Sprintf("c-%d", round), OrderId: id})
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

// principalA is the first filing's principal with phone ph.
func principalA(ph string) *domain.Person {
	return &domain.Person{Name: "张三", IDType: iddoc.ResidentIDCard, IDNumber: idA, Phone: ph}
}

// verifyAndApprove walks a submitted order to APPROVED.
func (e *env) verifyAndApprove(t *testing.T, id string, o *filingv1.Order) {
	t.Helper()
	ctx := context.Background()
	if o.GetState() == filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
		if _, err := e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{OrderId: id, Submission: o.GetSubmission()}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Store.RecordReviewOutcome(ctx, &filingv1.RecordReviewOutcomeRequest{OrderId: id,
		Outcome: filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED}); err != nil {
		t.Fatal(err)
	}
}

func testAddAccessCannotChangeThePrincipal(t *testing.T, e *env) {
	subject := e.approve(t, firstFiling())
	siteA := domain.Website{Domain: "a.cn", Person: principalA("13812345678")}
	// The principal of an ADD_ACCESS order is compared with the record although it does not verify.
	moved := e.create(t, domain.Spec{FilingType: domain.AddAccess, SubjectID: subject, Principal: principalA("13600000000"),
		Websites: []domain.Website{siteA}})
	wantError(t, e.trySubmit(moved), errs.KindFailedPrecondition, domain.ReasonPhoneChangeRequiresChangeFiling)
	// Approved with the record's principal, the order leaves the principal as it was: a deregistration
	// with the recorded number still passes.
	e.approve(t, domain.Spec{FilingType: domain.AddAccess, SubjectID: subject, Principal: principalA("13812345678"),
		Websites: []domain.Website{siteA}})
	dereg := e.create(t, domain.Spec{FilingType: domain.DeregisterSubject, SubjectID: subject, Principal: principalA("13812345678")})
	if o := e.submit(t, dereg); o.GetState() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
		t.Fatalf("deregistration = %v", o)
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
	resp, err := e.Store.CreateOrder(ctx, &filingv1.CreateOrderRequest{}, spec)
	if err != nil {
		t.Fatal(err)
	}
	err = e.trySubmit(resp.GetOrder().GetOrderId())
	wantError(t, err, errs.KindFailedPrecondition, domain.ReasonOrderInvalid)
	if !strings.Contains(err.Error(), "spec.subject_changed") {
		t.Fatalf("message does not name the field: %v", err)
	}
}

func testIDNumberMustMatchTheRecord(t *testing.T, e *env) {
	subject := e.approve(t, firstFiling())
	// The record's number with another person's ID: the verifier would be checked against the tail
	// the submitter chose.
	other := &domain.Person{Name: "张三", IDType: iddoc.ResidentIDCard, IDNumber: idB, Phone: "13812345678"}
	dereg := e.create(t, domain.Spec{FilingType: domain.DeregisterSubject, SubjectID: subject, Principal: other})
	err := e.trySubmit(dereg)
	wantError(t, err, errs.KindFailedPrecondition, domain.ReasonIDMismatchWithRecord)
	if strings.Contains(err.Error(), idB) || strings.Contains(err.Error(), iddoc.Tail(idB)) {
		t.Fatalf("message shows the ID number: %v", err)
	}
	site := e.create(t, domain.Spec{FilingType: domain.DeregisterWebsite, SubjectID: subject, Websites: []domain.Website{
		{Domain: "b.cn", Person: &domain.Person{Name: "李四", IDType: iddoc.Passport, IDNumber: "E12345678", Phone: "13912345678"}}}})
	wantError(t, e.trySubmit(site), errs.KindFailedPrecondition, domain.ReasonIDMismatchWithRecord)
	// With the record's document, the verifier gets the record's tail.
	before := len(e.outbox(t))
	ok := e.create(t, domain.Spec{FilingType: domain.DeregisterSubject, SubjectID: subject, Principal: principalA("13812345678")})
	e.submit(t, ok)
	rows := e.outbox(t)[before:]
	var open verificationv1.OpenSessionRequest
	if len(rows) != 2 || rows[0].target != convert.TargetOpenSession || proto.Unmarshal(rows[0].payload, &open) != nil {
		t.Fatalf("outbox = %v", rows)
	}
	if v := open.GetVerifiers(); len(v) != 1 || fmt.Sprint(v[0].GetIdTails()) != "["+iddoc.Tail(idA)+"]" {
		t.Fatalf("verifiers = %v", v)
	}
}

func testWebsitesAgainstTheRecord(t *testing.T, e *env) {
	subject := e.approve(t, firstFiling())
	newPerson := &domain.Person{Name: "王五", IDType: iddoc.Passport, IDNumber: "E12345678", Phone: "13700000000"}
	again := e.create(t, domain.Spec{FilingType: domain.AddWebsite, SubjectID: subject,
		Websites: []domain.Website{{Domain: "a.cn", Person: newPerson}}})
	wantError(t, e.trySubmit(again), errs.KindFailedPrecondition, domain.ReasonWebsiteAlreadyInRecord)
	change := domain.Spec{FilingType: domain.ChangeFiling, SubjectID: subject,
		Websites: []domain.Website{{Domain: "c.cn", Person: newPerson, Changed: true}}}
	missing := e.create(t, change)
	wantError(t, e.trySubmit(missing), errs.KindFailedPrecondition, domain.ReasonWebsiteNotInRecord)
	// Added and approved, c.cn is in the record: the change passes.
	e.approve(t, domain.Spec{FilingType: domain.AddWebsite, SubjectID: subject, Websites: []domain.Website{{Domain: "c.cn", Person: newPerson}}})
	if o := e.submit(t, e.create(t, change)); o.GetState() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
		t.Fatalf("change of c.cn = %v", o)
	}
}

func testUnknownSubjectCodes(t *testing.T, e *env) {
	ctx := context.Background()
	// The request names the subject: NotFound.
	_, err := e.Store.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: "c-unknown"},
		mustNormalize(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: "sub_nope"}))
	wantError(t, err, errs.KindNotFound, domain.ReasonSubjectNotFound)
	draft := e.create(t, firstFiling())
	_, err = e.Store.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{OrderId: draft},
		mustNormalize(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: "sub_nope"}))
	wantError(t, err, errs.KindNotFound, domain.ReasonSubjectNotFound)
	// The subject is deregistered after the order was created: at submit the request names only the
	// order, so it is the order's state.
	subject := e.approve(t, firstFiling())
	access := e.create(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: subject})
	e.approve(t, domain.Spec{FilingType: domain.DeregisterSubject, SubjectID: subject, Principal: principalA("13812345678")})
	wantError(t, e.trySubmit(access), errs.KindFailedPrecondition, domain.ReasonSubjectNotFound)
	_, err = e.Store.CreateOrder(ctx, &filingv1.CreateOrderRequest{},
		mustNormalize(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: subject}))
	wantError(t, err, errs.KindNotFound, domain.ReasonSubjectNotFound)
}

func testRequestIDReusedWithAnotherRequest(t *testing.T, e *env) {
	ctx := context.Background()
	first, err := e.Store.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: "same"}, mustNormalize(t, firstFiling()))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	again, err := e.Store.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: "same"}, mustNormalize(t, firstFiling()))
	if err != nil || !proto.Equal(first, again) {
		t.Fatalf("retry: %v, equal=%v", err, proto.Equal(first, again))
	}
	_, err = e.Store.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: "same", Spec: &filingv1.OrderSpec{SubjectName: "x"}},
		mustNormalize(t, firstFiling()))
	wantReason(t, err, errs.RequestIDReused.Reason)
	// A refused request stores nothing: the same request_id with a valid request then succeeds.
	id := first.GetOrder().GetOrderId()
	e.submit(t, id)
	_, err = e.Store.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{RequestId: "u", OrderId: id}, mustNormalize(t, firstFiling()))
	wantReason(t, err, domain.ReasonInvalidStateTransition)
	other := e.create(t, firstFiling())
	if _, err := e.Store.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{RequestId: "u", OrderId: id}, mustNormalize(t, firstFiling())); err == nil {
		t.Fatal("update of a submitted order succeeded on retry")
	}
	if _, err := e.Store.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{RequestId: "u2", OrderId: other}, mustNormalize(t, firstFiling())); err != nil {
		t.Fatal(err)
	}
}

func testAnswersAreCopies(t *testing.T, e *env) {
	id := e.create(t, firstFiling())
	o := e.submit(t, id)
	want := proto.Clone(o)
	o.GetVerifiers()[0].Roles[0] = "changed"
	o.GetHistory()[0].Reason = "changed"
	o.GetSpec().GetWebsites()[0].Domain = "changed"
	if got := e.get(t, id); !proto.Equal(got, want) {
		t.Fatalf("a change to an answer reached the store: %v", got)
	}
	got := e.get(t, id)
	got.GetVerifiers()[0].Roles[0] = "changed"
	if again := e.get(t, id); !proto.Equal(again, want) {
		t.Fatalf("a change to an answer reached the store: %v", again)
	}
}

// testListOrdersSameInstant pages through orders created at one instant: the order id breaks the
// tie, bytewise, and no order is skipped or repeated across pages.
func testListOrdersSameInstant(t *testing.T, e *env) {
	var want []string
	for range 7 {
		want = append(want, e.create(t, firstFiling()))
	}
	slices.Sort(want)
	slices.Reverse(want)
	var got []string
	token := ""
	for {
		page, next, err := e.Store.ListOrders(context.Background(), domain.StateDraft, 3, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			got = append(got, o.GetOrderId())
		}
		if next == "" {
			break
		}
		token = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages = %v, want %v", got, want)
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
