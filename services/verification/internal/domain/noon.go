package domain

import (
	"fmt"
	"io"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// The noon resend (工信部系统会在第二天中午重发一次验证码): the authority's system sends one automatic
// new code, at noon Beijing time of the day after a session's first code, to every verifier still
// pending. Verification owns the rule (it drew the first code and keeps the session); the deadline
// service only keeps the durable timer verification schedules at OpenSession.

// NoonZone is the time zone of the noon resend: the authority's, Beijing time.
const NoonZone = "Asia/Shanghai"

// NoonRule configures the noon resend.
type NoonRule struct {
	Enabled bool
	// Hour is the hour of the day (in Zone) the resend is due: 12 for noon.
	Hour int
	// Counts makes the automatic code use up one of the verifier's manual resends (--max-resends).
	Counts bool
	// Zone is where the hour is read; nil means UTC (the server loads NoonZone).
	Zone *time.Location
	// Delay, for tests of the whole suite only, replaces the calendar rule: due this long after the
	// first code (0: the calendar rule).
	Delay time.Duration
}

// Validate checks a rule from flags.
func (r NoonRule) Validate() error {
	if r.Hour < 0 || r.Hour > 23 {
		return fmt.Errorf("--noon-resend-hour must be 0-23, not %d", r.Hour)
	}
	if r.Delay < 0 {
		return fmt.Errorf("--noon-resend-delay must not be negative")
	}
	return nil
}

// NoonResendAt is when the automatic code of a session whose first code went out at first is due:
// Hour o'clock in Zone of the calendar day after first. ok is false when the rule is off or that
// instant is not before deadline (the window ends first: no automatic code, no timer).
func NoonResendAt(first, deadline time.Time, r NoonRule) (at time.Time, ok bool) {
	if !r.Enabled {
		return time.Time{}, false
	}
	if r.Delay > 0 {
		at = first.Add(r.Delay)
	} else {
		loc := r.Zone
		if loc == nil {
			loc = time.UTC
		}
		l := first.In(loc)
		// time.Date normalises day+1 across month and year ends, and resolves the hour in loc's offset
		// of that day (Asia/Shanghai has no DST; a zone with one still gets its local hour).
		at = time.Date(l.Year(), l.Month(), l.Day()+1, r.Hour, 0, 0, 0, loc)
	}
	at = at.UTC()
	if !at.Before(deadline) {
		return time.Time{}, false
	}
	return at, true
}

// AutoResendOutcome is what AutoResend did to a session.
type AutoResendOutcome int

// The AutoResend outcomes.
const (
	AutoResendSent          AutoResendOutcome = iota + 1 // codes drawn (possibly for nobody: none pending)
	AutoResendAlreadySent                                // an earlier call did it
	AutoResendSessionClosed                              // not open, or the window ended
	AutoResendDisabled                                   // the rule is off
)

// AutoResend is one verifier's automatic code: its index in the session's challenges and the code.
type AutoResend struct {
	Index int
	Code  string
}

// DecideAutoResend applies the noon resend to rec at now, changing rec (the session is marked, each
// pending verifier gets a new code) and returning the codes to send. Before the due instant it
// refuses with DEADLINE_NOT_REACHED (the sweeper re-arms), so it never sends early; after the
// window, for a closed session, a second time, or with the rule off it sends nothing. A verifier
// whose last code is younger than the resend interval is skipped: it has a fresh code already, and
// replacing it would invalidate the one it is typing. The automatic code counts against the manual
// resends only with r.Counts.
func DecideAutoResend(now time.Time, rec *SessionRecord, r NoonRule, l Limits, h *Hasher, rnd io.Reader) (AutoResendOutcome, []AutoResend, error) {
	switch {
	case !r.Enabled:
		return AutoResendDisabled, nil, nil
	case !rec.AutoResentAt.IsZero():
		return AutoResendAlreadySent, nil, nil
	case rec.State != SessionOpen || !now.Before(rec.DeadlineAt):
		return AutoResendSessionClosed, nil, nil
	}
	at, ok := NoonResendAt(rec.CreatedAt, rec.DeadlineAt, r)
	if !ok { // the rule changed since the timer was scheduled: the window now ends first
		return AutoResendSessionClosed, nil, nil
	}
	if now.Before(at) {
		return 0, nil, errs.FailedPrecondition(ReasonDeadlineNotReached, "the noon resend is due at %s", at.Format(time.RFC3339))
	}
	var out []AutoResend
	for i := range rec.Challenges {
		c := &rec.Challenges[i]
		if c.State != ChallengePending || now.Before(c.LastSentAt.Add(l.ResendInterval)) {
			continue
		}
		code, err := newCodeUnlike(rnd, h, c)
		if err != nil {
			return 0, nil, err
		}
		c.CodeKeyID, c.CodeHash = h.HashCode(c.ID, code)
		c.Generation++
		c.LastSentAt = now
		if r.Counts {
			c.ResendsUsed++
		}
		out = append(out, AutoResend{Index: i, Code: code})
	}
	rec.AutoResentAt = now
	return AutoResendSent, out, nil
}
