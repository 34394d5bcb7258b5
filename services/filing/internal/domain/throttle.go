package domain

import (
	"fmt"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// The defaults of SubmitLimits (security review H1: an order returned for failures came back at once
// with a fresh code and a fresh counter).
const (
	DefaultResubmitCooldown     = time.Hour
	DefaultMaxSubmissionsPerDay = 3
)

// The reasons of SubmitLimits' refusals.
const (
	ReasonResubmitCooldown    = "RESUBMIT_COOLDOWN"
	ReasonSubmissionsExceeded = "SUBMISSIONS_EXCEEDED"
)

// SubmitLimits bound how often one order is submitted.
type SubmitLimits struct {
	// ResubmitCooldown: an order returned TOO_MANY_FAILED_ATTEMPTS is submitted again no sooner (<= 0: none).
	ResubmitCooldown time.Duration
	// MaxPerDay: submissions of one order in any 24 hours (<= 0: no limit).
	MaxPerDay int
}

// Check refuses submitting o at now past the limits, decided on its history.
func (l SubmitLimits) Check(o Order, now time.Time) error {
	if l.ResubmitCooldown > 0 && o.State == StateReturned && o.ReturnReason == ReturnTooManyFailedAttempts {
		if returned, ok := lastMoveTo(o, StateReturned); ok && now.Before(returned.Add(l.ResubmitCooldown)) {
			return errs.FailedPrecondition(ReasonResubmitCooldown, "%s",
				fmt.Sprintf("the order was returned for too many failed checks: submit it again from %s",
					returned.Add(l.ResubmitCooldown).UTC().Format(time.RFC3339)))
		}
	}
	if l.MaxPerDay > 0 {
		var recent []time.Time
		for _, h := range o.History {
			if isSubmission(h) && h.At.After(now.Add(-24*time.Hour)) {
				recent = append(recent, h.At)
			}
		}
		if len(recent) >= l.MaxPerDay {
			next := recent[len(recent)-l.MaxPerDay].Add(24 * time.Hour)
			return errs.Exhausted(ReasonSubmissionsExceeded, next.Sub(now),
				"the order was submitted %d times in 24 hours, the most allowed: submit it again from %s",
				len(recent), next.UTC().Format(time.RFC3339))
		}
	}
	return nil
}

// isSubmission tells a history entry that a SubmitOrder made.
func isSubmission(h StateChange) bool {
	return (h.From == StateDraft || h.From == StateReturned) && (h.To == StateAwaitingVerification || h.To == StateUnderReview)
}

func lastMoveTo(o Order, to State) (time.Time, bool) {
	for i := len(o.History) - 1; i >= 0; i-- {
		if o.History[i].To == to {
			return o.History[i].At, true
		}
	}
	return time.Time{}, false
}
