package storetest

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

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
	_, err := e.Store.SubmitOrder(ctx, PortalA, &filingv1.SubmitOrderRequest{OrderId: dereg})
	wantReason(t, err, domain.ReasonPhoneChangeRequiresChangeFiling)
	// CHANGE_FILING may carry the new number; approved, it updates the record.
	e.approve(t, domain.Spec{FilingType: domain.ChangeFiling, SubjectID: subject, SubjectChanged: true, Principal: principal("13600000000")})
	// Now the deregistration with the new number passes the rule (after correction of the order).
	if _, err := e.Store.UpdateOrder(ctx, PortalA, &filingv1.UpdateOrderRequest{OrderId: dereg}, mustNormalize(t, domain.Spec{
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
	_, err = e.Store.SubmitOrder(ctx, PortalA, &filingv1.SubmitOrderRequest{OrderId: aa})
	wantReason(t, err, domain.ReasonWebsiteNotInRecord)
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
	_, err := e.Store.CreateOrder(ctx, PortalA, &filingv1.CreateOrderRequest{RequestId: "c-unknown"},
		mustNormalize(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: "sub_nope"}))
	wantError(t, err, errs.KindNotFound, domain.ReasonSubjectNotFound)
	draft := e.create(t, firstFiling())
	_, err = e.Store.UpdateOrder(ctx, PortalA, &filingv1.UpdateOrderRequest{OrderId: draft},
		mustNormalize(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: "sub_nope"}))
	wantError(t, err, errs.KindNotFound, domain.ReasonSubjectNotFound)
	// The subject is deregistered after the order was created: at submit the request names only the
	// order, so it is the order's state.
	subject := e.approve(t, firstFiling())
	access := e.create(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: subject})
	e.approve(t, domain.Spec{FilingType: domain.DeregisterSubject, SubjectID: subject, Principal: principalA("13812345678")})
	wantError(t, e.trySubmit(access), errs.KindFailedPrecondition, domain.ReasonSubjectNotFound)
	_, err = e.Store.CreateOrder(ctx, PortalA, &filingv1.CreateOrderRequest{},
		mustNormalize(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: subject}))
	wantError(t, err, errs.KindNotFound, domain.ReasonSubjectNotFound)
}
