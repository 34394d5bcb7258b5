package domain

import (
	"slices"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// The per-phone failure budget (security review H1): failed checks count per phone across every
// session, order and tenant, beside the per-verifier MaxFailedAttempts. A check counts one unit when
// its guess was compared with at least one code, whatever the number of codes. The check that counts
// the PhoneFailureBudget-th unit inside PhoneFailureWindow spends the budget: every pending challenge
// of the phone locks, their orders are returned, and the phone stays locked for one whole window from
// that failure. When the lock ends every counted failure is older than the window (they all came at
// or before the spending one), so any window of that length holds at most PhoneFailureBudget counted
// failures (docs/security.md, "no code can be guessed").

// ReasonPhoneLocked answers a check, a resend or a new session of a phone whose budget is spent.
const ReasonPhoneLocked = "PHONE_LOCKED"

// PhoneFailure is one counted failure of a phone. LocksUntil is set on the failure that spent the
// budget: the phone is locked until then.
type PhoneFailure struct {
	At         time.Time
	LocksUntil time.Time
}

// PhoneLockedUntil tells whether the phone with failures fs is locked at now, and until when.
func PhoneLockedUntil(now time.Time, fs []PhoneFailure) (time.Time, bool) {
	var until time.Time
	for _, f := range fs {
		if f.LocksUntil.After(until) {
			until = f.LocksUntil
		}
	}
	return until, now.Before(until)
}

// ErrPhoneLocked is the answer on a phone locked until until: no check and no new code before then.
func ErrPhoneLocked(until time.Time) error {
	e := errs.FailedPrecondition(ReasonPhoneLocked,
		"too many failed checks for this phone: no check and no new code before %s", until.UTC().Format(time.RFC3339))
	e.Metadata = map[string]string{"locked_until": until.UTC().Format(time.RFC3339)}
	return e
}

// CountPhoneFailure counts one failure of a phone with failures fs at now and returns the new
// failure to record. spent says it spent the budget: the phone locks until the returned LocksUntil.
func CountPhoneFailure(now time.Time, fs []PhoneFailure, l Limits) (f PhoneFailure, spent bool) {
	n := 1
	for _, x := range fs {
		if now.Sub(x.At) < l.PhoneFailureWindow {
			n++
		}
	}
	f = PhoneFailure{At: now}
	if n >= l.PhoneFailureBudget {
		f.LocksUntil = now.Add(l.PhoneFailureWindow)
		return f, true
	}
	return f, false
}

// PhoneFailuresPrunable tells whether a failure recorded at at is past use at now: it no longer
// counts, and any lock it set has ended (a lock lasts exactly one window from its failure).
func PhoneFailuresPrunable(now, at time.Time, l Limits) bool {
	return now.Sub(at) >= l.PhoneFailureWindow
}

// PhoneCheck is the phone-level decision of a check: refused on a locked phone, or the per-verifier
// decision plus whether it counted a unit of the budget and spent it.
type PhoneCheck struct {
	LockedUntil time.Time // set when the phone was locked: the check is refused, nothing counts
	Verify      VerifyDecision
	Failure     *PhoneFailure // the unit this check counted, if any
	Spent       bool          // the check spent the budget: every pending challenge of the phone locks
}

// DecidePhoneCheck is the phone rule around a per-verifier decision d (DecideVerify's, or
// DecideResendByPhone's as a decision without a pass), for both engines: a locked phone refuses the
// check; a mismatch that compared the guess with at least one code counts one unit of the phone's
// budget (fs are its counted failures).
func DecidePhoneCheck(now time.Time, d VerifyDecision, fs []PhoneFailure, l Limits) PhoneCheck {
	if until, locked := PhoneLockedUntil(now, fs); locked {
		return PhoneCheck{LockedUntil: until, Verify: VerifyDecision{Pass: -1}}
	}
	pc := PhoneCheck{Verify: d}
	if d.Pass < 0 && len(d.Failures) > 0 {
		f, spent := CountPhoneFailure(now, fs, l)
		pc.Failure, pc.Spent = &f, spent
	}
	return pc
}

// Err is the answer of a refused check (nil when it was not refused).
func (pc PhoneCheck) Err() error {
	if pc.LockedUntil.IsZero() {
		return nil
	}
	return ErrPhoneLocked(pc.LockedUntil)
}

// PhoneEffects is what a mismatch did to the pending challenges of its phone.
type PhoneEffects struct {
	Changed  []int    // indexes of the challenges whose count or state changed
	Locked   []int    // indexes of the challenges it locked (a subset of Changed)
	Returned []string // the sessions it failed, in order: each order is owed one return
	// LockedUntil is set when the check spent the budget: the returns carry the phone's lock.
	LockedUntil time.Time
}

// ApplyPhoneCheck applies a mismatch's decision pc to chs, every pending challenge of the phone
// (sessions by id), of which the caller saw visible (pc's failure indexes are into visible): each
// failure counts, a verifier at MaxFailedAttempts locks and fails its session, and a spent budget
// locks every pending challenge of an open session of the phone, whatever its tenant.
func ApplyPhoneCheck(pc PhoneCheck, sessions map[string]Session, chs []Challenge, visible []int) PhoneEffects {
	var e PhoneEffects
	fail := func(i int) {
		c := &chs[i]
		c.State = ChallengeLocked
		e.Locked = append(e.Locked, i)
		if sess := sessions[c.SessionID]; sess.State == SessionOpen {
			sess.State = SessionFailed
			sessions[c.SessionID] = sess
			e.Returned = append(e.Returned, sess.ID)
		}
	}
	for _, f := range pc.Verify.Failures {
		i := visible[f.Index]
		chs[i].Failed = f.FailedAttempts
		e.Changed = append(e.Changed, i)
		if f.Lock {
			fail(i)
		}
	}
	if !pc.Spent {
		return e
	}
	e.LockedUntil = pc.Failure.LocksUntil
	for i := range chs {
		if chs[i].State != ChallengePending || sessions[chs[i].SessionID].State != SessionOpen {
			continue
		}
		if !slices.Contains(e.Changed, i) {
			e.Changed = append(e.Changed, i)
		}
		fail(i)
	}
	return e
}
