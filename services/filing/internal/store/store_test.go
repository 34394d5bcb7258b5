package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
	"github.com/icpverify/icpverify/services/filing/internal/store"
)

const (
	idA = "110101199003074514" // valid GB 11643 numbers
	idB = "11010519491231002X"
)

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

type env struct {
	pool  *pgxpool.Pool
	st    *store.Store
	clock *clock.Fake
	woken int
	mu    sync.Mutex
}

func newEnv(t *testing.T) *env {
	t.Helper()
	pool := pgtest.NewSchema(t, "filing", store.Migrations, outbox.Migrations, idempotency.Migrations)
	e := &env{pool: pool, clock: clock.NewFake(t0)}
	e.st = store.New(pool, e.clock, store.Config{VerificationWindow: 24 * time.Hour, Locale: "zh-CN"})
	e.st.OnEnqueue = func() { e.mu.Lock(); e.woken++; e.mu.Unlock() }
	return e
}

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
	n, err := domain.Rules{}.Normalize(spec)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := e.st.CreateOrder(context.Background(), &filingv1.CreateOrderRequest{RequestId: store.NewID("r")}, n)
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetOrder().GetOrderId()
}

func (e *env) submit(t *testing.T, id string) *filingv1.Order {
	t.Helper()
	resp, err := e.st.SubmitOrder(context.Background(), &filingv1.SubmitOrderRequest{RequestId: store.NewID("r"), OrderId: id})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return resp.GetOrder()
}

type outboxRow struct {
	target  string
	payload []byte
}

func (e *env) outbox(t *testing.T) []outboxRow {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT target, payload FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var r outboxRow
		if err := rows.Scan(&r.target, &r.payload); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	if got := errs.Reason(err); got != reason {
		t.Fatalf("err = %v (reason %q), want reason %q", err, got, reason)
	}
}

func TestSubmitWritesOutbox(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, firstFiling())
	o := e.submit(t, id)
	if o.GetState() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION || o.GetSubmission() != 1 {
		t.Fatalf("state %s submission %d", o.GetState(), o.GetSubmission())
	}
	deadline := t0.Add(24 * time.Hour)
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
	if len(rows) != 2 || rows[0].target != store.TargetOpenSession || rows[1].target != store.TargetScheduleDeadline {
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
	if e.woken != 1 {
		t.Fatalf("relay woken %d times, want 1", e.woken)
	}
	h := o.GetHistory()
	if len(h) != 2 || h[1].GetFrom() != filingv1.OrderState_ORDER_STATE_DRAFT || h[1].GetActor() != "portal" {
		t.Fatalf("history = %v", h)
	}
	// A second submit of the same order is a wrong state.
	_, err := e.st.SubmitOrder(context.Background(), &filingv1.SubmitOrderRequest{RequestId: "again", OrderId: id})
	wantReason(t, err, domain.ReasonInvalidStateTransition)
}

func TestSubmitRetrySameRequestID(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, firstFiling())
	req := &filingv1.SubmitOrderRequest{RequestId: "submit-1", OrderId: id}
	a, err := e.st.SubmitOrder(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.st.SubmitOrder(context.Background(), req)
	if err != nil || !proto.Equal(a, b) {
		t.Fatalf("retry: %v, equal=%v", err, proto.Equal(a, b))
	}
	if n := len(e.outbox(t)); n != 2 {
		t.Fatalf("outbox rows %d after retry, want 2", n)
	}
}

func TestMarkVerifiedIdempotentAndStale(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(t, firstFiling())
	e.submit(t, id)
	_, err := e.st.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "stale", OrderId: id, Submission: 2})
	wantReason(t, err, domain.ReasonStaleSubmission)
	first, err := e.st.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "mv-1", OrderId: id, Submission: 1})
	if err != nil || first.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW {
		t.Fatalf("mark verified: %v %v", first, err)
	}
	// A redelivery with another request id finds the order already verified for this submission.
	e.clock.Advance(time.Minute)
	again, err := e.st.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "mv-2", OrderId: id, Submission: 1})
	if err != nil || !proto.Equal(first.GetOrder(), again.GetOrder()) {
		t.Fatalf("second mark verified: %v, unchanged=%v", err, proto.Equal(first.GetOrder(), again.GetOrder()))
	}
	_, err = e.st.ReturnOrder(ctx, &filingv1.ReturnOrderRequest{RequestId: "r", OrderId: id, Submission: 1,
		Reason: filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT})
	wantReason(t, err, domain.ReasonInvalidStateTransition)
}

func TestReturnOrderIdempotentAndResubmit(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(t, firstFiling())
	e.submit(t, id)
	ret := &filingv1.ReturnOrderRequest{RequestId: "ret-1", OrderId: id, Submission: 1,
		Reason: filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS}
	first, err := e.st.ReturnOrder(ctx, ret)
	if err != nil || first.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_RETURNED ||
		first.GetOrder().GetReturnReason() != filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS {
		t.Fatalf("return: %v %v", first, err)
	}
	ret.RequestId = "ret-2"
	again, err := e.st.ReturnOrder(ctx, ret)
	if err != nil || !proto.Equal(first.GetOrder(), again.GetOrder()) {
		t.Fatalf("second return: %v", err)
	}
	// Corrected and submitted again: a new submission with a new window; the old one is stale.
	e.clock.Advance(time.Hour)
	o := e.submit(t, id)
	if o.GetSubmission() != 2 || !o.GetDeadlineAt().AsTime().Equal(t0.Add(25*time.Hour)) ||
		o.GetReturnReason() != filingv1.ReturnReason_RETURN_REASON_UNSPECIFIED {
		t.Fatalf("resubmitted = %v", o)
	}
	ret.RequestId = "ret-3"
	_, err = e.st.ReturnOrder(ctx, ret)
	wantReason(t, err, domain.ReasonStaleSubmission)
	_, err = e.st.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "mv-old", OrderId: id, Submission: 1})
	wantReason(t, err, domain.ReasonStaleSubmission)
	if n := len(e.outbox(t)); n != 4 {
		t.Fatalf("outbox rows %d, want 4 (two per submission)", n)
	}
}

func TestConcurrentSubmitOneSubmission(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, firstFiling())
	const n = 8
	var wg sync.WaitGroup
	errsCh := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := e.st.SubmitOrder(context.Background(), &filingv1.SubmitOrderRequest{RequestId: fmt.Sprintf("c-%d", i), OrderId: id})
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
	o, err := e.st.Order(context.Background(), id)
	if err != nil || o.Submission != 1 || len(o.Verifiers) != 2 {
		t.Fatalf("order after race: %+v %v", o, err)
	}
	if rows := e.outbox(t); len(rows) != 2 {
		t.Fatalf("outbox rows %d, want 2", len(rows))
	}
}

func TestCancelAwaitingEnqueuesCancels(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := e.create(t, firstFiling())
	e.submit(t, id)
	resp, err := e.st.CancelOrder(ctx, &filingv1.CancelOrderRequest{RequestId: "c", OrderId: id, Reason: "changed my mind"})
	if err != nil || resp.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_CANCELLED {
		t.Fatalf("cancel: %v %v", resp, err)
	}
	rows := e.outbox(t)
	if len(rows) != 4 || rows[2].target != store.TargetCancelSession || rows[3].target != store.TargetCancelDeadline {
		t.Fatalf("outbox = %v", rows)
	}
	var cs verificationv1.CancelSessionRequest
	if err := proto.Unmarshal(rows[2].payload, &cs); err != nil || cs.GetRequestId() != fmt.Sprintf("filing:cancel-session:%s:1", id) {
		t.Fatalf("cancel session = %v %v", &cs, err)
	}
	_, err = e.st.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "late", OrderId: id, Submission: 1})
	wantReason(t, err, domain.ReasonInvalidStateTransition)
	// A draft cancels without calls to other services.
	draft := e.create(t, firstFiling())
	if _, err := e.st.CancelOrder(ctx, &filingv1.CancelOrderRequest{OrderId: draft}); err != nil {
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
		if _, err := e.st.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{OrderId: id, Submission: o.GetSubmission()}); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := e.st.RecordReviewOutcome(ctx, &filingv1.RecordReviewOutcomeRequest{OrderId: id,
		Outcome: filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED, Comment: "ok"})
	if err != nil || resp.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_APPROVED {
		t.Fatalf("approve: %v %v", resp, err)
	}
	return resp.GetOrder().GetSpec().GetSubjectId()
}

func TestApprovedRecordAndPhoneChangeRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	subject := e.approve(t, firstFiling())
	if subject == "" {
		t.Fatal("first filing approval did not name a subject")
	}
	rec, err := e.st.Subject(ctx, subject)
	if err != nil || rec.Principal.Phone != "+8613812345678" || len(rec.Websites) != 2 {
		t.Fatalf("record = %+v %v", rec, err)
	}
	principal := func(ph string) *domain.Person {
		return &domain.Person{Name: "张三", IDType: iddoc.ResidentIDCard, IDNumber: idA, Phone: ph}
	}
	// DEREGISTER_SUBJECT with a new principal number is refused at submit.
	dereg := e.create(t, domain.Spec{FilingType: domain.DeregisterSubject, SubjectID: subject, Principal: principal("13600000000")})
	_, err = e.st.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{OrderId: dereg})
	wantReason(t, err, domain.ReasonPhoneChangeRequiresChangeFiling)
	// CHANGE_FILING may carry the new number; approved, it updates the record.
	e.approve(t, domain.Spec{FilingType: domain.ChangeFiling, SubjectID: subject, SubjectChanged: true, Principal: principal("13600000000")})
	if rec, _ = e.st.Subject(ctx, subject); rec.Principal.Phone != "+8613600000000" {
		t.Fatalf("record principal phone = %s", rec.Principal.Phone)
	}
	// Now the deregistration with the new number passes the rule (after correction of the order).
	if _, err := e.st.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{OrderId: dereg}, mustNormalize(t, domain.Spec{
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
	// Unknown subject.
	unknown := e.create(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: "sub_nope"})
	_, err = e.st.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{OrderId: unknown})
	wantReason(t, err, domain.ReasonSubjectNotFound)
	// Website not in the record.
	aa := e.create(t, domain.Spec{FilingType: domain.AddAccess, SubjectID: subject, Websites: []domain.Website{
		{Domain: "c.cn", Person: principal("13600000000")}}})
	_, err = e.st.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{OrderId: aa})
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

func TestUpdateOnlyInDraftOrReturned(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.create(t, firstFiling())
	e.submit(t, id)
	_, err := e.st.UpdateOrder(context.Background(), &filingv1.UpdateOrderRequest{OrderId: id}, mustNormalize(t, firstFiling()))
	wantReason(t, err, domain.ReasonInvalidStateTransition)
	_, err = e.st.GetOrder(context.Background(), "ord_missing")
	wantReason(t, err, store.ReasonOrderNotFound)
}

func TestListOrdersPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
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
		page, next, err := e.st.ListOrders(ctx, domain.StateUnspecified, 2, token)
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
	awaiting, next, err := e.st.ListOrders(ctx, domain.StateAwaitingVerification, 0, "")
	if err != nil || len(awaiting) != 1 || awaiting[0].GetOrderId() != ids[1] || next != "" || len(awaiting[0].GetVerifiers()) != 2 {
		t.Fatalf("filtered = %v %q %v", awaiting, next, err)
	}
	_, _, err = e.st.ListOrders(ctx, domain.StateDraft, 2, token)
	wantReason(t, err, "INVALID_PAGE_TOKEN")
}
