// Package storetest is the one behaviour suite of filing's storage, run against every engine (the
// PostgreSQL store and memstore): Run drives the use cases of package app on an engine, the way the
// gRPC handlers do, and observes the calls owed to other services through its outbox queue, so both
// engines are held to the same answers, outbox rows, history and races.
package storetest

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/filing/internal/app"
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
		"MarkVerifiedBatch":                 testMarkVerifiedBatch,
		"ReturnOrderBatch":                  testReturnOrderBatch,
		"CancelAwaitingEnqueuesCancels":     testCancelAwaitingEnqueuesCancels,
		"ApprovedRecordAndPhoneChangeRule":  testApprovedRecordAndPhoneChangeRule,
		"AddAccessCannotChangeThePrincipal": testAddAccessCannotChangeThePrincipal,
		"IDNumberMustMatchTheRecord":        testIDNumberMustMatchTheRecord,
		"WebsitesAgainstTheRecord":          testWebsitesAgainstTheRecord,
		"ServicesOfEveryKind":               testServicesOfEveryKind,
		"UnknownSubjectCodes":               testUnknownSubjectCodes,
		"StoredSpecFailingTheRulesAtSubmit": testStoredSpecFailingTheRulesAtSubmit,
		"UpdateOnlyInDraftOrReturned":       testUpdateOnlyInDraftOrReturned,
		"RequestIDReusedWithAnotherRequest": testRequestIDReusedWithAnotherRequest,
		"ListOrdersPages":                   testListOrdersPages,
		"ListOrdersSameInstant":             testListOrdersSameInstant,
		"AnswersAreCopies":                  testAnswersAreCopies,
		"OtherTenantsOrderIsUnknown":        testOtherTenantsOrderIsUnknown,
		"ListOrdersPerTenant":               testListOrdersPerTenant,
		"RequestIDsPerTenant":               testRequestIDsPerTenant,
		"OpenChallengesPerPhone":            testOpenChallengesPerPhone,
		"RacingSubmitsForTheLastSlot":       testRacingSubmitsForTheLastSlot,
		"PhoneLocksBlockSubmissions":        testPhoneLocksBlockSubmissions,
		"SubmitLimits":                      testSubmitLimits,
		"RecordHolders":                     testRecordHolders,
		"RecordMismatchIsGeneric":           testRecordMismatchIsGeneric,
		"RecordMismatchBudget":              testRecordMismatchBudget,
		"RacingMismatchesKeepTheBudget":     testRacingMismatchesKeepTheBudget,
	}
	for name, test := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := &env{clock: clock.NewFake(T0)}
			eng := newEngine(t, e.clock, func() { e.woken.Add(1) })
			// The default app.Config (24 h window, zh-CN, default rules) but for the cap of open challenges
			// per phone, which the suites' orders, sharing their phones, would reach (see PhoneSlots).
			e.engine = eng.Engine
			e.Store, e.Outbox = app.New(eng.Engine, app.Config{MaxOpenChallengesPerPhone: -1, Submits: noSubmitLimits}), eng.Outbox
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
	engine app.Engine
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
	resp, err := e.Store.CreateOrder(context.Background(), PortalA, &filingv1.CreateOrderRequest{RequestId: domain.NewID("r")}, mustNormalize(t, spec))
	if err != nil {
		t.Fatal(err)
	}
	return resp.GetOrder().GetOrderId()
}

func (e *env) submit(t *testing.T, id string) *filingv1.Order {
	t.Helper()
	resp, err := e.Store.SubmitOrder(context.Background(), PortalA, &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: id})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	return resp.GetOrder()
}

func (e *env) trySubmit(id string) error {
	_, err := e.Store.SubmitOrder(context.Background(), PortalA, &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: id})
	return err
}

func (e *env) get(t *testing.T, id string) *filingv1.Order {
	t.Helper()
	o, err := e.Store.GetOrder(context.Background(), PortalA, id)
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

// approve walks an order of portal A to APPROVED and returns its subject id (new for a first filing).
func (e *env) approve(t *testing.T, spec domain.Spec) string {
	t.Helper()
	return e.approveAs(t, PortalA, spec)
}

// approveAs is approve with an order of actor.
func (e *env) approveAs(t *testing.T, actor domain.Actor, spec domain.Spec) string {
	t.Helper()
	ctx := context.Background()
	created, err := e.Store.CreateOrder(ctx, actor, &filingv1.CreateOrderRequest{RequestId: domain.NewID("r")}, mustNormalize(t, spec))
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetOrder().GetOrderId()
	submitted, err := e.Store.SubmitOrder(ctx, actor, &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: id})
	if err != nil {
		t.Fatalf("submit: %v", err)
	}
	o := submitted.GetOrder()
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

func mustNormalize(t *testing.T, s domain.Spec) domain.Spec {
	t.Helper()
	n, err := domain.Rules{}.Normalize(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// principalA is the first filing's principal with phone ph.
func principalA(ph string) *domain.Person {
	return &domain.Person{Name: "张三", IDType: iddoc.ResidentIDCard, IDNumber: idA, Phone: ph}
}
