// Package domain holds the rules of deadline timers without any I/O: validation of a schedule, the
// timer's state machine, and when a timer that could not fire is tried again. Time is always a
// parameter, so the rules are tested without a clock.
package domain

import (
	"fmt"
	"strings"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/orderid"
)

// State is where a timer stands.
type State string

// The timer states. PENDING is the only state the sweeper acts on; FIRED and CANCELLED are final.
const (
	Pending   State = "PENDING"
	Fired     State = "FIRED"
	Cancelled State = "CANCELLED"
)

// Kind is what a timer does when it fires. The zero value is the close timer, so a Key written
// without a kind names the submission's deadline, as it did before there were kinds.
type Kind int16

// The timer kinds, stored as these numbers (the kind column).
const (
	// KindClose is the verification deadline: verification.CloseIfIncomplete.
	KindClose Kind = 0
	// KindNoonResend is the noon resend of the day after the first code: verification.AutoResend.
	KindNoonResend Kind = 1
)

// Key names one timer: one kind of timer of one submission of one order.
type Key struct {
	OrderID    string
	Submission int32
	Kind       Kind
}

// Close is the key of the close timer of k's submission.
func (k Key) Close() Key { return Key{OrderID: k.OrderID, Submission: k.Submission, Kind: KindClose} }

// Noon is the key of the noon resend timer of k's submission.
func (k Key) Noon() Key {
	return Key{OrderID: k.OrderID, Submission: k.Submission, Kind: KindNoonResend}
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

// Reasons of the errors this service returns.
const (
	ReasonInvalidDueTime = "INVALID_DUE_TIME"
	ReasonInvalidState   = "INVALID_STATE"
	ReasonNotFound       = "DEADLINE_NOT_FOUND"
	ReasonConflict       = "DEADLINE_CONFLICT"
)

// NormalizeTime drops what PostgreSQL's timestamptz cannot hold (below a microsecond), so that a
// repeated schedule compares equal to the stored one.
func NormalizeTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// ValidateKey checks an (order_id, submission) pair.
func ValidateKey(k Key) error {
	return orderid.CheckSubmission(k.OrderID, k.Submission)
}

// ValidateSchedule checks a schedule request; hasDue is false when due_time was not given.
func ValidateSchedule(k Key, hasDue bool, due time.Time) error {
	return ValidateTimer(k, "due_time", hasDue, due)
}

// ValidateTimer checks a request that creates a timer due at the time of field (has: it was given).
func ValidateTimer(k Key, field string, has bool, at time.Time) error {
	if err := ValidateKey(k); err != nil {
		return err
	}
	if !has || at.IsZero() || at.Unix() <= 0 {
		return errs.Invalid(field, ReasonInvalidDueTime, "%s is required", field)
	}
	return nil
}

// New is the timer a first schedule creates, pending until due. Insert decides whether it stays
// pending next to the order's other timers.
func New(k Key, due, now time.Time) Deadline {
	d := Deadline{Key: k, DueAt: NormalizeTime(due), State: Pending, CreatedAt: NormalizeTime(now)}
	d.NextAttemptAt = d.DueAt
	return d
}

// Placeholder is the timer a cancel of a submission not scheduled yet leaves behind: the cancel
// overtook ScheduleDeadline in delivery, and the placeholder makes that late schedule a no-op instead
// of arming a timer for an order that is already decided. Its due time is the cancel's time (there is
// no other), so listings and the table's rule next_attempt_at >= due_at hold for it like any timer.
func Placeholder(k Key, now time.Time) Deadline {
	d := New(k, now, now)
	d.State = Cancelled
	return d
}

// Insert decides what adding the new timer d does to an order whose other timers are others: d is
// cancelled when a newer submission exists (a late, re-delivered schedule of a superseded submission
// must not close anything), and the pending timers of older submissions are cancelled (returned, to be
// stored). A noon resend timer is also born cancelled when its submission's close timer is no longer
// pending (the session completed or closed, or a cancel overtook the schedule): nothing may be sent
// for a decided submission. Both engines store exactly what Insert returns.
func Insert(d Deadline, others []Deadline) (Deadline, []Deadline) {
	var superseded []Deadline
	for _, o := range others {
		if o.Submission > d.Submission {
			d.State = Cancelled
		}
		if d.Kind == KindNoonResend && o.Key == d.Key.Close() && o.State != Pending {
			d.State = Cancelled
		}
		if Supersedes(d.Submission, o) {
			o, _ = Cancel(o)
			superseded = append(superseded, o)
		}
	}
	return d, superseded
}

// Reschedule decides a repeated schedule of an existing timer: the same due time returns the timer
// unchanged; a different one is a conflict (a submission has one deadline, fixed at submit time). A
// cancelled timer is returned unchanged whatever the due time: nothing of it will fire, and it may be
// the Placeholder of a cancel that overtook this schedule.
func Reschedule(existing Deadline, due time.Time) (Deadline, error) {
	if existing.State != Cancelled && !existing.DueAt.Equal(NormalizeTime(due)) {
		return Deadline{}, errs.AlreadyExists(ReasonConflict, "this submission already has a different deadline")
	}
	return existing, nil
}

// Supersedes tells whether a timer of submission sub cancels the pending timer d of the same order.
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

// Claimable tells whether a sweeper may claim d at now: pending, not leased or backing off, and due.
// The PostgreSQL claim states the same condition as its WHERE clause, which its index needs.
func Claimable(d Deadline, now time.Time) bool {
	return d.State == Pending && !d.NextAttemptAt.After(now) && !d.DueAt.After(now)
}

// Claim is d taken by a sweeper at now: hidden from other sweepers until now+lease, with the attempt
// counted. The new Attempts is the claim's token: Fire and Rearm only accept the latest claim's.
func Claim(d Deadline, now time.Time, lease time.Duration) Deadline {
	d.Attempts++
	d.NextAttemptAt = NormalizeTime(now.Add(lease))
	return d
}

// Fire records that the close call of the claim numbered attempts succeeded. Only a pending timer
// still held by that claim fires; anything else (cancelled meanwhile, or re-claimed after the lease
// ran out) is unchanged, so a timer fires exactly once.
func Fire(d Deadline, attempts int32, now time.Time, closed bool) (out Deadline, changed bool) {
	if d.State != Pending || d.Attempts != attempts {
		return d, false
	}
	d.State = Fired
	d.FiredAt = NormalizeTime(now)
	d.Closed = closed
	d.LastError = ""
	return d, true
}

// Firing is one successful close call to record: Fire(d, Attempts, At, Closed) of the timer Key.
// The sweeper records a claimed batch's firings together.
type Firing struct {
	Key      Key
	Attempts int32
	At       time.Time
	Closed   bool
}

// Rearm sets when a timer whose close call of the claim numbered attempts did not fire is claimed
// again, with the same guard as Fire. A next before the due time is refused: it would fire early.
func Rearm(d Deadline, attempts int32, next time.Time, lastError string) (out Deadline, changed bool, err error) {
	if d.State != Pending || d.Attempts != attempts {
		return d, false, nil
	}
	next = NormalizeTime(next)
	if next.Before(d.DueAt) {
		return d, false, fmt.Errorf("re-arm %s/%d at %s, before its due time %s", d.OrderID, d.Submission, next, d.DueAt)
	}
	d.NextAttemptAt = next
	d.LastError = lastError
	return d, true, nil
}

// ClaimCompare orders claims: soonest next attempt first, ties by order id, submission and kind, so
// both engines claim the same timers in the same order.
func ClaimCompare(a, b Deadline) int {
	if c := a.NextAttemptAt.Compare(b.NextAttemptAt); c != 0 {
		return c
	}
	if a.OrderID != b.OrderID {
		return strings.Compare(a.OrderID, b.OrderID)
	}
	if a.Submission != b.Submission {
		return int(a.Submission - b.Submission)
	}
	return int(a.Kind - b.Kind)
}

// ListLess is the order of ListDeadlines: soonest due first, then by order id and submission, so
// that a page resumes exactly after the Position of its last row.
func ListLess(a, b Deadline) bool {
	if !a.DueAt.Equal(b.DueAt) {
		return a.DueAt.Before(b.DueAt)
	}
	if a.OrderID != b.OrderID {
		return a.OrderID < b.OrderID
	}
	return a.Submission < b.Submission
}

// Position is a place in ListLess order: the sort key of the last timer of a page.
type Position struct {
	DueAt      time.Time
	OrderID    string
	Submission int32
}

// PositionOf is the position of d in ListLess order.
func PositionOf(d Deadline) Position {
	return Position{DueAt: d.DueAt, OrderID: d.OrderID, Submission: d.Submission}
}

// After tells whether d comes after p in ListLess order, so belongs to the page that resumes at p.
func (p Position) After(d Deadline) bool {
	return ListLess(Deadline{Key: Key{OrderID: p.OrderID, Submission: p.Submission}, DueAt: p.DueAt}, d)
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

// Classify maps the result of a close call to an outcome: ok, or a refusal because the deadline is
// not reached (verification's DEADLINE_NOT_REACHED), or any other failure.
func Classify(ok, notReached bool) Outcome {
	switch {
	case ok:
		return OutcomeFired
	case notReached:
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
