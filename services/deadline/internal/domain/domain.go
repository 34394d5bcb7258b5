// Package domain holds the rules of deadline timers without any I/O: validation of a schedule, the
// timer's state machine, and when a timer that could not fire is tried again. Time is always a
// parameter, so the rules are tested without a clock.
package domain

import (
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// State is where a timer stands.
type State string

// The timer states. PENDING is the only state the sweeper acts on; FIRED and CANCELLED are final.
const (
	Pending   State = "PENDING"
	Fired     State = "FIRED"
	Cancelled State = "CANCELLED"
)

// Final tells whether no transition leaves s.
func (s State) Final() bool { return s == Fired || s == Cancelled }

// Key names one timer: one submission of one order.
type Key struct {
	OrderID    string
	Submission int32
}

// Deadline is one order submission's timer.
type Deadline struct {
	Key
	DueAt time.Time
	State State
	// NextAttemptAt is when the sweeper may claim the timer next; it starts at DueAt and is never
	// set before it, which is what keeps a timer from firing early.
	NextAttemptAt time.Time
	Attempts      int32
	LastError     string
	FiredAt       time.Time // zero unless Fired
	Closed        bool      // firing closed an incomplete session (the order was returned)
	CreatedAt     time.Time
}

// Limits on input.
const (
	MaxOrderIDLength = 128
	DefaultPageSize  = 50
	MaxPageSize      = 200
)

// Reasons of the errors this service returns.
const (
	ReasonInvalidOrderID    = "INVALID_ORDER_ID"
	ReasonInvalidSubmission = "INVALID_SUBMISSION"
	ReasonInvalidDueTime    = "INVALID_DUE_TIME"
	ReasonInvalidPageSize   = "INVALID_PAGE_SIZE"
	ReasonInvalidPageToken  = "INVALID_PAGE_TOKEN"
	ReasonInvalidState      = "INVALID_STATE"
	ReasonNotFound          = "DEADLINE_NOT_FOUND"
	ReasonConflict          = "DEADLINE_CONFLICT"
)

// NormalizeTime drops what PostgreSQL's timestamptz cannot hold (below a microsecond), so that a
// repeated schedule compares equal to the stored one.
func NormalizeTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ValidateOrderID checks an order id given in field.
func ValidateOrderID(field, id string) error {
	switch {
	case id == "":
		return errs.Invalid(field, ReasonInvalidOrderID, "order_id is required")
	case len(id) > MaxOrderIDLength:
		return errs.Invalid(field, ReasonInvalidOrderID, "order_id is longer than %d characters", MaxOrderIDLength)
	}
	return nil
}

// ValidateKey checks an (order_id, submission) pair.
func ValidateKey(k Key) error {
	if err := ValidateOrderID("order_id", k.OrderID); err != nil {
		return err
	}
	if k.Submission <= 0 {
		return errs.Invalid("submission", ReasonInvalidSubmission, "submission must be positive")
	}
	return nil
}

// ValidateSchedule checks a schedule request; hasDue is false when due_time was not given.
func ValidateSchedule(k Key, hasDue bool, due time.Time) error {
	if err := ValidateKey(k); err != nil {
		return err
	}
	if !hasDue || due.IsZero() || due.Unix() <= 0 {
		return errs.Invalid("due_time", ReasonInvalidDueTime, "due_time is required")
	}
	return nil
}

// New is the timer a first schedule creates. A submission older than one already scheduled for the
// order is created CANCELLED: a late, re-delivered schedule of a superseded submission must not
// close anything.
func New(k Key, due, now time.Time, newerExists bool) Deadline {
	d := Deadline{Key: k, DueAt: NormalizeTime(due), State: Pending, CreatedAt: NormalizeTime(now)}
	d.NextAttemptAt = d.DueAt
	if newerExists {
		d.State = Cancelled
	}
	return d
}

// Reschedule decides a repeated schedule of an existing timer: the same due time returns the timer
// unchanged; a different one is a conflict (a submission has one deadline, fixed at submit time).
func Reschedule(existing Deadline, due time.Time) (Deadline, error) {
	if !existing.DueAt.Equal(NormalizeTime(due)) {
		return Deadline{}, errs.AlreadyExists(ReasonConflict, "this submission already has a different deadline")
	}
	return existing, nil
}

// Supersedes tells whether scheduling submission sub cancels the pending timer d of the same order.
func Supersedes(sub int32, d Deadline) bool {
	return d.State == Pending && d.Submission < sub
}

// Cancel moves a pending timer to CANCELLED. Cancelling a final timer is not an error: it is
// returned unchanged (changed false), because a cancel that races the sweeper must not fail.
func Cancel(d Deadline) (out Deadline, changed bool) {
	if d.State != Pending {
		return d, false
	}
	d.State = Cancelled
	return d, true
}

// Fire records that the close call succeeded. Only a pending timer fires; anything else is unchanged.
func Fire(d Deadline, now time.Time, closed bool) (out Deadline, changed bool) {
	if d.State != Pending {
		return d, false
	}
	d.State = Fired
	d.FiredAt = NormalizeTime(now)
	d.Closed = closed
	d.LastError = ""
	return d, true
}

// NotReachedDelay is how long after the due time a timer is tried again when verification answered
// that its deadline was not reached yet (clocks of the two services disagree slightly).
const NotReachedDelay = 200 * time.Millisecond

// Outcome classifies the answer of one close attempt.
type Outcome int

// The outcomes of one close attempt.
const (
	OutcomeFired      Outcome = iota + 1 // OK: the timer is done
	OutcomeNotReached                    // verification says it is too early: re-arm at the due time
	OutcomeRetry                         // anything else: try again after a backoff
)

// Classify maps the ErrorInfo reason of a failed call (or ok) to an outcome.
func Classify(ok bool, reason string) Outcome {
	switch {
	case ok:
		return OutcomeFired
	case reason == "DEADLINE_NOT_REACHED":
		return OutcomeNotReached
	default:
		return OutcomeRetry
	}
}

// NextAttempt is when a timer that did not fire may be claimed again. It is never before the due
// time: a re-armed timer waits for max(due, now) plus a small delay, a failed one for now plus the
// backoff.
func NextAttempt(o Outcome, due, now time.Time, backoff time.Duration) time.Time {
	var next time.Time
	switch o {
	case OutcomeNotReached:
		next = due
		if now.After(next) {
			next = now
		}
		next = next.Add(NotReachedDelay)
	default:
		next = now.Add(backoff)
	}
	if next.Before(due) {
		next = due
	}
	return NormalizeTime(next)
}

// PageSize applies the default and the maximum to a requested page size.
func PageSize(n int32) (int, error) {
	switch {
	case n < 0:
		return 0, errs.Invalid("page_size", ReasonInvalidPageSize, "page_size must not be negative")
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return MaxPageSize, nil
	}
	return int(n), nil
}
