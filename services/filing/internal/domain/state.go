package domain

import (
	"fmt"

	"github.com/icpverify/icpverify/pkg/errs"
)

// State is where an order stands; the values mirror icp.filing.v1.OrderState.
type State int32

// The order states.
const (
	StateUnspecified State = iota
	StateDraft
	StateAwaitingVerification
	StateUnderReview
	StateApproved
	StateRejected
	StateReturned
	StateCancelled
)

var stateNames = [...]string{"UNSPECIFIED", "DRAFT", "AWAITING_VERIFICATION", "UNDER_REVIEW", "APPROVED", "REJECTED",
	"RETURNED", "CANCELLED"}

func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE(%d)", int32(s))
}

// ParseState is the inverse of String, for states read from storage.
func ParseState(name string) (State, error) {
	for i, n := range stateNames {
		if n == name {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("unknown order state %q", name)
}

// Event is something that moves an order.
type Event int

// The events.
const (
	EventSubmit   Event = iota + 1 // portal: SubmitOrder
	EventVerified                  // verification: every verifier passed
	EventReturn                    // verification: timeout or too many failed attempts
	EventCancel                    // portal: CancelOrder
	EventApprove                   // administration
	EventReject                    // administration
)

var eventNames = map[Event]string{EventSubmit: "submit", EventVerified: "mark verified", EventReturn: "return",
	EventCancel: "cancel", EventApprove: "approve", EventReject: "reject"}

func (e Event) String() string { return eventNames[e] }

// ReasonInvalidStateTransition is the reason of an event the order's state does not allow.
const ReasonInvalidStateTransition = "INVALID_STATE_TRANSITION"

// Next returns the state an event moves an order to. needsVerification matters for EventSubmit only:
// an order nobody must verify goes straight to UNDER_REVIEW.
func Next(from State, ev Event, needsVerification bool) (State, error) {
	to := StateUnspecified
	switch ev {
	case EventSubmit:
		if from == StateDraft || from == StateReturned {
			to = StateUnderReview
			if needsVerification {
				to = StateAwaitingVerification
			}
		}
	case EventVerified:
		if from == StateAwaitingVerification {
			to = StateUnderReview
		}
	case EventReturn:
		if from == StateAwaitingVerification {
			to = StateReturned
		}
	case EventCancel:
		if from == StateDraft || from == StateReturned || from == StateAwaitingVerification {
			to = StateCancelled
		}
	case EventApprove:
		if from == StateUnderReview {
			to = StateApproved
		}
	case EventReject:
		if from == StateUnderReview {
			to = StateRejected
		}
	}
	if to == StateUnspecified {
		return from, errs.FailedPrecondition(ReasonInvalidStateTransition, "cannot %s an order in state %s", ev, from)
	}
	return to, nil
}

// CheckUpdatable tells whether an order's content may still be replaced (DRAFT or RETURNED).
func CheckUpdatable(s State) error {
	if s == StateDraft || s == StateReturned {
		return nil
	}
	return errs.FailedPrecondition(ReasonInvalidStateTransition, "cannot update an order in state %s: only DRAFT or RETURNED orders can be changed", s)
}

// ReasonStaleSubmission is the reason of a verification outcome for a submission that is not the order's current one.
const ReasonStaleSubmission = "STALE_SUBMISSION"

// VerificationOutcome decides what a verification outcome (EventVerified or EventReturn) for
// submission does to an order: apply=false with a nil error means the order already shows this
// outcome for this submission and is returned unchanged (the call is a redelivery).
func VerificationOutcome(o Order, ev Event, submission int32) (to State, apply bool, err error) {
	if submission != o.Submission {
		return o.State, false, errs.FailedPrecondition(ReasonStaleSubmission,
			"submission %d is not the order's current submission %d", submission, o.Submission)
	}
	switch {
	case ev == EventVerified && o.State == StateUnderReview,
		ev == EventReturn && o.State == StateReturned:
		return o.State, false, nil
	}
	to, err = Next(o.State, ev, true)
	return to, err == nil, err
}

// ReviewEvent is the event of an administration's decision.
func ReviewEvent(approved bool) Event {
	if approved {
		return EventApprove
	}
	return EventReject
}

// OutcomeText is the history reason of a verification outcome, and the return reason to store.
func OutcomeText(ev Event, reason ReturnReason) (string, ReturnReason) {
	if ev == EventReturn {
		return reason.String(), reason
	}
	return "all verifiers passed", ReturnNone
}
