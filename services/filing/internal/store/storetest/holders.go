package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// PortalC is a third tenant, for the budget tests.
var PortalC = domain.Actor{ID: "apikey:portal-c", Tenant: "portal-c"}

const unknownSubject = "sub_0123456789abcdef0123456789abcdef"

// createAs creates an order of actor with spec on st.
func createAs(st *app.App, actor domain.Actor, spec domain.Spec) (string, error) {
	n, err := domain.Rules{}.Normalize(spec)
	if err != nil {
		return "", err
	}
	resp, err := st.CreateOrder(context.Background(), actor, &filingv1.CreateOrderRequest{RequestId: domain.NewID("r")}, n)
	return resp.GetOrder().GetOrderId(), err
}

func submitAs(st *app.App, actor domain.Actor, id string) (*filingv1.Order, error) {
	resp, err := st.SubmitOrder(context.Background(), actor, &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: id})
	return resp.GetOrder(), err
}

func mustCreateAs(t *testing.T, st *app.App, actor domain.Actor, spec domain.Spec) string {
	t.Helper()
	id, err := createAs(st, actor, spec)
	if err != nil {
		t.Fatalf("create as %s: %v", actor.Tenant, err)
	}
	return id
}

// The ADD_ACCESS orders of the suites against firstFiling's record: a.cn as the record has it, a.cn
// with another person's ID number, and a website the record does not have.
func addAccess(subject string) domain.Spec {
	return domain.Spec{FilingType: domain.AddAccess, SubjectID: subject, Websites: []domain.Website{
		{Domain: "a.cn", Person: principalA("13812345678")}}}
}

func addAccessWrongID(subject string) domain.Spec {
	return domain.Spec{FilingType: domain.AddAccess, SubjectID: subject, Websites: []domain.Website{
		{Domain: "a.cn", Person: &domain.Person{Name: "张三", IDType: iddoc.ResidentIDCard, IDNumber: idB, Phone: "13812345678"}}}}
}

func addAccessNotInRecord(subject string) domain.Spec {
	return domain.Spec{FilingType: domain.AddAccess, SubjectID: subject, Websites: []domain.Website{
		{Domain: "c.cn", Person: principalA("13812345678")}}}
}

// sameError fails unless got is exactly want (kind, reason, field, message, retry): nothing tells
// them apart.
func sameError(t *testing.T, what string, got, want error) {
	t.Helper()
	var g, w *errs.Error
	if !errors.As(got, &g) || !errors.As(want, &w) || fmt.Sprintf("%#v", *g) != fmt.Sprintf("%#v", *w) {
		t.Fatalf("%s: %#v, want exactly %#v", what, got, want)
	}
}

// testRecordHolders: an approved FIRST_FILING makes its tenant the holder; another tenant's
// CHANGE_FILING or CHANGE_ACCESS on the record is answered exactly as an unknown subject id, at
// create, update and submit; an approved ADD_ACCESS makes the other tenant a holder too, and its
// approved CANCEL_ACCESS makes it one no longer. The authority holds every record.
func testRecordHolders(t *testing.T, e *env) {
	ctx := context.Background()
	subject := e.approve(t, firstFiling())
	change := func(id string) domain.Spec {
		return domain.Spec{FilingType: domain.ChangeFiling, SubjectID: id, SubjectChanged: true, SubjectName: "新名称",
			Principal: principalA("13812345678")}
	}
	_, theirs := createAs(e.Store, PortalB, change(subject))
	_, unknown := createAs(e.Store, PortalB, change(unknownSubject))
	wantError(t, theirs, errs.KindNotFound, domain.ReasonSubjectNotFound)
	sameError(t, "B's CHANGE_FILING on A's record", theirs, unknown)
	draft := mustCreateAs(t, e.Store, PortalB, firstFiling())
	update := func(spec domain.Spec) error {
		_, err := e.Store.UpdateOrder(ctx, PortalB, &filingv1.UpdateOrderRequest{RequestId: domain.NewID("u"), OrderId: draft}, mustNormalize(t, spec))
		return err
	}
	sameError(t, "B's update to a CHANGE_FILING on A's record", update(change(subject)), update(change(unknownSubject)))
	// The holder and the authority file it.
	mustCreateAs(t, e.Store, PortalA, change(subject))
	mustCreateAs(t, e.Store, Authority, change(subject))

	// B takes access to a.cn: from then on it files against the record.
	e.approveAs(t, PortalB, addAccess(subject))
	access := mustCreateAs(t, e.Store, PortalB, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: subject})
	// B gives its access up; the order it filed before is answered at submit as one whose subject has
	// no record, word for word.
	e.approveAs(t, PortalB, domain.Spec{FilingType: domain.CancelAccess, SubjectID: subject})
	_, gone := submitAs(e.Store, PortalB, access)
	wantError(t, gone, errs.KindFailedPrecondition, domain.ReasonSubjectNotFound)
	deregistered := e.approve(t, firstFiling())
	stale := mustCreateAs(t, e.Store, PortalA, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: deregistered})
	e.approve(t, domain.Spec{FilingType: domain.DeregisterSubject, SubjectID: deregistered, Principal: principalA("13812345678")})
	_, none := submitAs(e.Store, PortalA, stale)
	sameError(t, "B's submit after its CANCEL_ACCESS", gone, none)
	_, err := createAs(e.Store, PortalB, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: subject})
	wantError(t, err, errs.KindNotFound, domain.ReasonSubjectNotFound)
	// A still holds it.
	if o, err := submitAs(e.Store, PortalA, mustCreateAs(t, e.Store, PortalA, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: subject})); err != nil ||
		o.GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW {
		t.Fatalf("A's CHANGE_ACCESS: %v %v", o, err)
	}
}

// testRecordMismatchIsGeneric: a tenant that does not hold the record gets one answer for every
// mismatch of its ADD_ACCESS order (no field, role or domain); the holder gets the detail; a
// matching order of the stranger passes.
func testRecordMismatchIsGeneric(t *testing.T, e *env) {
	subject := e.approve(t, firstFiling())
	_, wrongID := submitAs(e.Store, PortalB, mustCreateAs(t, e.Store, PortalB, addAccessWrongID(subject)))
	wantError(t, wrongID, errs.KindFailedPrecondition, domain.ReasonRecordMismatch)
	sameError(t, "the stranger's wrong ID", wrongID, domain.RecordMismatch())
	_, notInRecord := submitAs(e.Store, PortalB, mustCreateAs(t, e.Store, PortalB, addAccessNotInRecord(subject)))
	sameError(t, "the stranger's website not in the record", notInRecord, wrongID)
	_, detailed := submitAs(e.Store, PortalA, mustCreateAs(t, e.Store, PortalA, addAccessWrongID(subject)))
	wantError(t, detailed, errs.KindFailedPrecondition, domain.ReasonIDMismatchWithRecord)
	_, detailed = submitAs(e.Store, Authority, mustCreateAs(t, e.Store, Authority, addAccessNotInRecord(subject)))
	wantError(t, detailed, errs.KindFailedPrecondition, domain.ReasonWebsiteNotInRecord)
	if o, err := submitAs(e.Store, PortalB, mustCreateAs(t, e.Store, PortalB, addAccess(subject))); err != nil ||
		o.GetState() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
		t.Fatalf("the stranger's matching ADD_ACCESS: %v %v", o, err)
	}
}

// testRecordMismatchBudget: with a budget of 2 an hour, B's third comparison with A's record in the
// hour is refused RECORD_MISMATCH_BUDGET before anything is compared (a matching order too), with the
// time the first mismatch leaves the window; so are B's creates and updates of ADD_ACCESS orders
// against records it does not hold. The count survived the rollback of each failed submission (the
// orders are still drafts). A comparison that matched gave its reservation back. The holder and
// other tenants are not limited by B's budget; the window passing frees it.
func testRecordMismatchBudget(t *testing.T, e *env) {
	ctx := context.Background()
	st := app.New(e.engine, app.Config{MaxOpenChallengesPerPhone: -1, Submits: noSubmitLimits,
		Mismatches: domain.MismatchBudget{Max: 2, Window: time.Hour}})
	subject := e.approve(t, firstFiling())
	wrong := mustCreateAs(t, st, PortalB, addAccessWrongID(subject))
	right := mustCreateAs(t, st, PortalB, addAccess(subject))
	_, err := submitAs(st, PortalB, wrong)
	wantReason(t, err, domain.ReasonRecordMismatch)
	first := e.clock.Now()
	e.clock.Advance(10 * time.Minute)
	if _, err := submitAs(st, PortalB, mustCreateAs(t, st, PortalB, addAccess(subject))); err != nil {
		t.Fatalf("a matching comparison with one left: %v", err)
	}
	_, err = submitAs(st, PortalB, mustCreateAs(t, st, PortalB, addAccessNotInRecord(subject)))
	wantReason(t, err, domain.ReasonRecordMismatch) // the matching one gave its reservation back
	e.clock.Advance(10 * time.Minute)

	_, err = submitAs(st, PortalB, right)
	var de *errs.Error
	if !errors.As(err, &de) || de.Kind != errs.KindResourceExhausted || de.Reason != domain.ReasonRecordMismatchBudget ||
		de.RetryAfter != first.Add(time.Hour).Sub(e.clock.Now()) {
		t.Fatalf("B's third comparison in the hour: %#v, want ResourceExhausted %s retrying in 40m", err, domain.ReasonRecordMismatchBudget)
	}
	_, err = submitAs(st, PortalB, wrong)
	wantError(t, err, errs.KindResourceExhausted, domain.ReasonRecordMismatchBudget)
	if o, err := st.GetOrder(ctx, PortalB, wrong); err != nil || o.GetState() != filingv1.OrderState_ORDER_STATE_DRAFT || o.GetSubmission() != 0 {
		t.Fatalf("the failed submission changed the order: %v %v", o, err)
	}
	_, err = createAs(st, PortalB, addAccess(subject))
	wantError(t, err, errs.KindResourceExhausted, domain.ReasonRecordMismatchBudget)
	_, err = st.UpdateOrder(ctx, PortalB, &filingv1.UpdateOrderRequest{RequestId: domain.NewID("u"), OrderId: wrong}, mustNormalize(t, addAccess(subject)))
	wantError(t, err, errs.KindResourceExhausted, domain.ReasonRecordMismatchBudget)
	// Unknown subjects and B's first filings are no comparison with a record it does not hold.
	_, err = createAs(st, PortalB, addAccess(unknownSubject))
	wantError(t, err, errs.KindNotFound, domain.ReasonSubjectNotFound)
	mustCreateAs(t, st, PortalB, firstFiling())
	// The holder keeps the detail and has no budget to spend; C has its own.
	_, err = submitAs(st, PortalA, mustCreateAs(t, st, PortalA, addAccessWrongID(subject)))
	wantReason(t, err, domain.ReasonIDMismatchWithRecord)
	_, err = submitAs(st, PortalC, mustCreateAs(t, st, PortalC, addAccessWrongID(subject)))
	wantReason(t, err, domain.ReasonRecordMismatch)

	// When the first mismatch leaves the window, B compares once more.
	e.clock.Set(first.Add(time.Hour))
	_, err = submitAs(st, PortalB, wrong)
	wantReason(t, err, domain.ReasonRecordMismatch)
	_, err = submitAs(st, PortalB, right)
	wantError(t, err, errs.KindResourceExhausted, domain.ReasonRecordMismatchBudget)
}

// testRacingMismatchesKeepTheBudget: 8 racing mismatching submissions of one tenant with a budget of
// 3: exactly 3 are compared, the rest refused before comparing.
func testRacingMismatchesKeepTheBudget(t *testing.T, e *env) {
	st := app.New(e.engine, app.Config{MaxOpenChallengesPerPhone: -1, Submits: noSubmitLimits,
		Mismatches: domain.MismatchBudget{Max: 3, Window: time.Hour}})
	subject := e.approve(t, firstFiling())
	const racers = 8
	ids := make([]string, racers)
	for i := range ids {
		ids[i] = mustCreateAs(t, st, PortalB, addAccessWrongID(subject))
	}
	var wg sync.WaitGroup
	reasons := make([]string, racers)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := submitAs(st, PortalB, id)
			reasons[i] = errs.Reason(err)
		}()
	}
	wg.Wait()
	count := map[string]int{}
	for _, r := range reasons {
		count[r]++
	}
	if count[domain.ReasonRecordMismatch] != 3 || count[domain.ReasonRecordMismatchBudget] != racers-3 {
		t.Fatalf("racing mismatches: %v, want 3 compared and %d refused", count, racers-3)
	}
}
