package domain

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

func TestPlanSubmit(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	rec := Subject{ID: "sub_1", Principal: mustPerson(t, person("张三", idA, "13812345678")), Holders: []string{"t1"}}
	holder := Access{Actor: Actor{Tenant: "t1"}}
	records := func(id string) (Subject, bool, error) { return rec, id == rec.ID, nil }
	draft := func(s Spec) Order { return Order{ID: "ord_1", State: StateDraft, Spec: mustNormalize(t, Rules{}, s)} }

	first := draft(Spec{FilingType: FirstFiling, Principal: person("张三", idA, "13812345678"),
		Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: person("李四", idB, "13912345678")}}})
	p, err := Rules{}.PlanSubmit(first, now, time.Hour, holder, records)
	if err != nil || p.To != StateAwaitingVerification || p.Number != 1 || len(p.Verifiers) != 2 || !p.DeadlineAt.Equal(now.Add(time.Hour)) {
		t.Fatalf("first filing plan = %+v, %v", p, err)
	}
	first.State, first.Submission = StateReturned, 1
	if p, err = (Rules{}).PlanSubmit(first, now, time.Hour, holder, records); err != nil || p.Number != 2 {
		t.Fatalf("resubmission plan = %+v, %v", p, err)
	}
	access := draft(Spec{FilingType: ChangeAccess, SubjectID: "sub_1"})
	if p, err = (Rules{}).PlanSubmit(access, now, time.Hour, holder, records); err != nil || p.To != StateUnderReview || !p.DeadlineAt.IsZero() {
		t.Fatalf("nobody verifies: plan = %+v, %v", p, err)
	}

	fails := func(name string, o Order, rules Rules, kind errs.Kind, reason string, inMessage string) {
		t.Run(name, func(t *testing.T) {
			_, err := rules.PlanSubmit(o, now, time.Hour, holder, records)
			var de *errs.Error
			if !errors.As(err, &de) || de.Kind != kind || de.Reason != reason || !strings.Contains(de.Message, inMessage) || de.Field != "" {
				t.Fatalf("err = %#v, want kind %d reason %s with %q in the message and no field", err, kind, reason, inMessage)
			}
		})
	}
	fails("wrong state", Order{State: StateApproved, Spec: first.Spec}, Rules{}, errs.KindFailedPrecondition, ReasonInvalidStateTransition, "")
	// The request has no spec: a stored spec the current rules refuse is the order's state, not bad input.
	addWebsite := draft(Spec{FilingType: AddWebsite, SubjectID: "sub_1", Websites: []Website{{Kind: KindWebsite, Domain: "c.cn", Person: person("李四", idB, "13912345678")}}})
	fails("stored spec fails the current rules", addWebsite, Rules{AddWebsitePrincipal: true}, errs.KindFailedPrecondition, ReasonOrderInvalid,
		"spec.principal")
	// The request names the order, not the subject: a subject gone since is the order's state too.
	gone := draft(Spec{FilingType: ChangeAccess, SubjectID: "sub_gone"})
	fails("unknown subject", gone, Rules{}, errs.KindFailedPrecondition, ReasonSubjectNotFound, "")
}
