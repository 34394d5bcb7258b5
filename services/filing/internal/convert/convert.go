// Package convert is where filing's domain meets the wire: the protobuf form of orders in answers,
// the request specs in domain form, and the calls a change owes verification and deadline (outbox
// messages with their targets), so each is written once for every engine and handler.
package convert

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pii"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// Order renders an order for a response, with every phone and ID number masked (PIPL).
func Order(o domain.Order) *filingv1.Order {
	out := &filingv1.Order{
		OrderId:      o.ID,
		Tenant:       o.Tenant,
		Spec:         specProto(o.Spec),
		State:        filingv1.OrderState(o.State),
		Submission:   o.Submission,
		DeadlineAt:   ts(o.DeadlineAt),
		ReturnReason: filingv1.ReturnReason(o.ReturnReason),
		CreateTime:   ts(o.CreatedAt),
		UpdateTime:   ts(o.UpdatedAt),
	}
	for _, v := range o.Verifiers {
		out.Verifiers = append(out.Verifiers, &filingv1.Verifier{PhoneMasked: pii.MaskPhone(v.Phone), Roles: v.Roles})
	}
	for _, c := range o.History {
		out.History = append(out.History, &filingv1.StateChange{From: filingv1.OrderState(c.From), To: filingv1.OrderState(c.To),
			At: ts(c.At), Actor: c.Actor, Reason: c.Reason})
	}
	return out
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func specProto(s domain.Spec) *filingv1.OrderSpec {
	out := &filingv1.OrderSpec{
		FilingType:     filingv1.FilingType(s.FilingType),
		SubjectId:      s.SubjectID,
		SubjectName:    s.SubjectName,
		SubjectType:    filingv1.SubjectType(s.SubjectType),
		Principal:      maskedPerson(s.Principal),
		SubjectChanged: s.SubjectChanged,
		Province:       s.Province,
	}
	// An answer lists the WEBSITE services in websites, as before services existed, so the readers
	// that predate them see every website, and every other kind in services: each service once,
	// whichever list the request named it in (README, decisions).
	for _, w := range domain.FoldedServices(s) {
		if w.Kind == domain.KindWebsite {
			out.Websites = append(out.Websites, &filingv1.Website{Domain: w.Domain, Name: w.Name, Person: maskedPerson(w.Person), Changed: w.Changed})
		} else {
			out.Services = append(out.Services, serviceProto(w))
		}
	}
	return out
}

func serviceProto(w domain.Service) *filingv1.Service {
	out := &filingv1.Service{Kind: filingv1.ServiceKind(w.Kind), Domain: w.Domain, Name: w.Name,
		MiniProgramPlatform: filingv1.MiniProgramPlatform(w.MiniPlatform), MiniProgramAppId: w.MiniAppID,
		QuickAppPackage: w.Package, Person: maskedPerson(w.Person), Changed: w.Changed}
	for _, id := range w.AppIDs {
		out.AppPlatforms = append(out.AppPlatforms, &filingv1.AppPlatformId{Platform: filingv1.AppPlatform(id.Platform), PackageOrBundleId: id.ID})
	}
	return out
}

func maskedPerson(p *domain.Person) *filingv1.Person {
	if p == nil {
		return nil
	}
	out := &filingv1.Person{Name: p.Name, IdType: filingv1.IdDocumentType(p.IDType), IdNumber: pii.MaskID(p.IDNumber),
		Phone: pii.MaskPhone(p.Phone)}
	if p.EmergencyPhone != "" {
		out.EmergencyPhone = pii.MaskPhone(p.EmergencyPhone)
	}
	if p.HKMacaoIDNumber != "" {
		out.HkMacaoIdNumber = pii.MaskID(p.HKMacaoIDNumber)
	}
	return out
}

// SpecFromProto converts a request spec to the domain form (not yet validated): websites stay in
// Websites, for Normalize to fold into Services and name their fields spec.websites[i].
func SpecFromProto(p *filingv1.OrderSpec) domain.Spec {
	s := domain.Spec{
		FilingType:     domain.FilingType(p.GetFilingType()),
		SubjectID:      p.GetSubjectId(),
		SubjectName:    p.GetSubjectName(),
		SubjectType:    int32(p.GetSubjectType()),
		Principal:      personFromProto(p.GetPrincipal()),
		SubjectChanged: p.GetSubjectChanged(),
		Province:       p.GetProvince(),
	}
	for _, w := range p.GetWebsites() {
		s.Websites = append(s.Websites, domain.Website{Kind: domain.KindWebsite, Domain: w.GetDomain(), Name: w.GetName(),
			Person: personFromProto(w.GetPerson()), Changed: w.GetChanged()})
	}
	for _, w := range p.GetServices() {
		sv := domain.Service{Kind: domain.ServiceKind(w.GetKind()), Domain: w.GetDomain(), Name: w.GetName(),
			MiniPlatform: domain.MiniPlatform(w.GetMiniProgramPlatform()), MiniAppID: w.GetMiniProgramAppId(),
			Package: w.GetQuickAppPackage(), Person: personFromProto(w.GetPerson()), Changed: w.GetChanged()}
		for _, id := range w.GetAppPlatforms() {
			sv.AppIDs = append(sv.AppIDs, domain.AppID{Platform: domain.AppPlatform(id.GetPlatform()), ID: id.GetPackageOrBundleId()})
		}
		s.Services = append(s.Services, sv)
	}
	return s
}

func personFromProto(p *filingv1.Person) *domain.Person {
	if p == nil {
		return nil
	}
	return &domain.Person{Name: p.GetName(), IDType: iddoc.Type(p.GetIdType()), IDNumber: p.GetIdNumber(),
		Phone: p.GetPhone(), EmergencyPhone: p.GetEmergencyPhone(), HKMacaoIDNumber: p.GetHkMacaoIdNumber()}
}

// Outbox targets this service writes; the relay in server.Run has a handler for each.
const (
	TargetOpenSession      = "verification.OpenSession"
	TargetCancelSession    = "verification.CancelSession"
	TargetScheduleDeadline = "deadline.ScheduleDeadline"
	TargetCancelDeadline   = "deadline.CancelDeadline"
)

// SubmitMessages are the calls of a submission that opened a verification window: the session with
// every verifier's phone and ID tails (which live nowhere else in this service), and its deadline.
func SubmitMessages(o domain.Order, p domain.Submission, locale string) []outbox.Message {
	orderID := o.ID
	if len(p.Verifiers) == 0 {
		return nil
	}
	specs := make([]*verificationv1.VerifierSpec, len(p.Verifiers))
	for i, v := range p.Verifiers {
		specs[i] = &verificationv1.VerifierSpec{Phone: v.Phone, Roles: v.Roles, IdTails: v.IDTails}
	}
	return []outbox.Message{
		{Target: TargetOpenSession, Sensitive: true, Msg: &verificationv1.OpenSessionRequest{
			RequestId: fmt.Sprintf("filing:open-session:%s:%d", orderID, p.Number), OrderId: orderID, Submission: p.Number,
			DeadlineAt: timestamppb.New(p.DeadlineAt), Verifiers: specs, Locale: locale, Tenant: o.Tenant}},
		{Target: TargetScheduleDeadline, Msg: &deadlinev1.ScheduleDeadlineRequest{
			RequestId: fmt.Sprintf("filing:schedule-deadline:%s:%d", orderID, p.Number), OrderId: orderID, Submission: p.Number,
			DueTime: timestamppb.New(p.DeadlineAt)}},
	}
}

// CancelMessages are the calls of a cancel of order o (in its state before the cancel): an order in
// verification closes its session and its deadline timer.
func CancelMessages(o domain.Order) []outbox.Message {
	if o.State != domain.StateAwaitingVerification {
		return nil
	}
	return []outbox.Message{
		{Target: TargetCancelSession, Msg: &verificationv1.CancelSessionRequest{
			RequestId: fmt.Sprintf("filing:cancel-session:%s:%d", o.ID, o.Submission), OrderId: o.ID, Submission: o.Submission}},
		{Target: TargetCancelDeadline, Msg: &deadlinev1.CancelDeadlineRequest{
			RequestId: fmt.Sprintf("filing:cancel-deadline:%s:%d", o.ID, o.Submission), OrderId: o.ID, Submission: o.Submission}},
	}
}

// PhoneLocks are the phone locks a ReturnOrder carries (grpcapi checked them).
func PhoneLocks(req *filingv1.ReturnOrderRequest) []domain.PhoneLock {
	var out []domain.PhoneLock
	for _, l := range req.GetPhoneLocks() {
		out = append(out, domain.PhoneLock{Phone: l.GetPhone(), Until: l.GetUntil().AsTime().UTC()})
	}
	return out
}
