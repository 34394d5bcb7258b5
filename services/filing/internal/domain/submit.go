package domain

import (
	"errors"
	"fmt"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// ReasonOrderInvalid is the reason of a SubmitOrder whose stored order fails the current rules (the
// rules are configuration and may have changed since the order was saved).
const ReasonOrderInvalid = "ORDER_INVALID"

// UnknownSubject is the error of a request that names a subject_id with no live approved record.
func UnknownSubject() error {
	return errs.NotFound(ReasonSubjectNotFound, "no approved subject with this subject_id")
}

// Submission is what a SubmitOrder does to an order.
type Submission struct {
	To         State
	Number     int32      // the new submission number
	Verifiers  []Verifier // who must verify; empty: straight to review
	DeadlineAt time.Time  // end of the verification window; zero when nobody verifies
	Reason     string     // for the history
}

// orderInvalid is SubmitOrder's answer when the stored order fails a rule of its shape.
func orderInvalid(err error) error {
	var de *errs.Error
	if errors.As(err, &de) && de.Kind == errs.KindInvalidArgument {
		return errs.FailedPrecondition(ReasonOrderInvalid,
			"the order fails the current rules at %s (%s): %s; correct it with UpdateOrder", de.Field, de.Reason, de.Message)
	}
	return err
}

// RecordLookup returns the live approved record of a subject; found=false when there is none.
type RecordLookup func(subjectID string) (rec Subject, found bool, err error)

// PlanSubmit decides a SubmitOrder of o at now by access: the state must allow it, the stored spec
// must pass the current rules and, for every type but FIRST_FILING, the subject's approved record
// (read with record, which the caller keeps locked until the change is written). The request names
// only the order, so what is wrong with its content or its subject is the order's state:
// FailedPrecondition. A subject the actor may not file against is answered as one without a record;
// an ADD_ACCESS against a record held elsewhere needs access.Granted (else ForeignRecord) and learns
// of any mismatch only RecordMismatch: the details are the holders' data.
func (r Rules) PlanSubmit(o Order, now time.Time, window time.Duration, access Access, record RecordLookup) (Submission, error) {
	if _, err := Next(o.State, EventSubmit, true); err != nil {
		return Submission{}, err
	}
	spec, err := r.Normalize(o.Spec)
	if err != nil {
		return Submission{}, orderInvalid(err)
	}
	if spec.FilingType != FirstFiling {
		rec, err := liveRecord(spec, access, record, orderSubjectGone)
		if err != nil {
			return Submission{}, err
		}
		if err := r.CheckAgainstRecord(spec, rec); err != nil {
			if !access.Actor.Holds(rec) {
				return Submission{}, RecordMismatch()
			}
			return Submission{}, err
		}
		if spec.Province == "" {
			// The administration that holds the record reviews its later orders; its rule decides
			// the tails (a HK/Macau permit holder's in Zhejiang).
			spec.Province = rec.Province
			if err := r.CheckBackIDs(spec, nil); err != nil {
				return Submission{}, orderInvalid(err)
			}
		}
	}
	p := Submission{Number: o.Submission + 1, Verifiers: r.Verifiers(spec)}
	if p.To, err = Next(o.State, EventSubmit, len(p.Verifiers) > 0); err != nil {
		return Submission{}, err
	}
	if len(p.Verifiers) > 0 {
		p.DeadlineAt = now.Add(window)
		p.Reason = fmt.Sprintf("submission %d: %d verifier(s)", p.Number, len(p.Verifiers))
	} else {
		p.Reason = fmt.Sprintf("submission %d: nobody must verify, straight to review", p.Number)
	}
	return p, nil
}
