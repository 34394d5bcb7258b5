package store

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/pii"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// OrderProto renders an order for a response, with every phone and ID number masked (PIPL). It lives
// here because the store keeps the first answer of each mutating request (idempotency) and must
// render it inside the same transaction.
func OrderProto(o domain.Order) *filingv1.Order {
	out := &filingv1.Order{
		OrderId:      o.ID,
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
	}
	for _, w := range s.Websites {
		out.Websites = append(out.Websites, &filingv1.Website{Domain: w.Domain, Name: w.Name, Person: maskedPerson(w.Person), Changed: w.Changed})
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
	return out
}
