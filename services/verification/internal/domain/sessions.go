package domain

import (
	"bytes"
	"time"
)

// SessionRecord is a session with its challenges and, for a session a change creates, the ID-tail
// hashes of each challenge (by challenge id). An engine loads existing sessions without their tails:
// only a check compares them, and no use case changes them.
type SessionRecord struct {
	Session
	Challenges []Challenge
	Tails      map[string][]TailHash
}

// Challenge returns the challenge of verifierID, or nil.
func (r *SessionRecord) Challenge(verifierID string) *Challenge {
	for i := range r.Challenges {
		if r.Challenges[i].VerifierID == verifierID {
			return &r.Challenges[i]
		}
	}
	return nil
}

// OrderSessions is every session of one order, as a use case on the order sees them.
type OrderSessions struct {
	OrderID  string
	Sessions []SessionRecord
	// PhoneFailures are the counted failures of the phones the use case named (app.Op.Phones).
	PhoneFailures map[string][]PhoneFailure
}

// Find returns the session of submission, or nil.
func (o *OrderSessions) Find(submission int32) *SessionRecord {
	for i := range o.Sessions {
		if o.Sessions[i].Submission == submission {
			return &o.Sessions[i]
		}
	}
	return nil
}

// Latest returns the session of the order's highest submission, or nil.
func (o *OrderSessions) Latest() *SessionRecord {
	var best *SessionRecord
	for i := range o.Sessions {
		if best == nil || o.Sessions[i].Submission > best.Submission {
			best = &o.Sessions[i]
		}
	}
	return best
}

// Add appends a new session and returns it.
func (o *OrderSessions) Add(r SessionRecord) *SessionRecord {
	o.Sessions = append(o.Sessions, r)
	return &o.Sessions[len(o.Sessions)-1]
}

// PhoneChallenges is the pending challenges of one phone in open sessions, with their sessions (by
// id) and ID-tail hashes (by challenge id), as a use case on the phone sees them, and the phone's
// counted failures (the per-phone budget). Challenges are in id order. A use case appends the unit
// it counts to Failures; the engine records what is beyond the loaded ones.
type PhoneChallenges struct {
	Phone      string
	Sessions   map[string]Session
	Challenges []Challenge
	Tails      map[string][]TailHash
	Failures   []PhoneFailure
}

// Mismatch applies a mismatch's decision pc (DecidePhoneCheck's; failure indexes into visible) to
// the phone's challenges and sessions and counts its unit of the budget.
func (p *PhoneChallenges) Mismatch(pc PhoneCheck, visible []int) PhoneEffects {
	if pc.Failure != nil {
		p.Failures = append(p.Failures, *pc.Failure)
	}
	return ApplyPhoneCheck(pc, p.Sessions, p.Challenges, visible)
}

// ChallengeChanged tells whether a use case changed any stored field of a challenge.
func ChallengeChanged(before, after Challenge) bool {
	return !bytes.Equal(before.CodeHash, after.CodeHash) || before.CodeKeyID != after.CodeKeyID ||
		before.Generation != after.Generation || before.Failed != after.Failed || before.ResendsUsed != after.ResendsUsed ||
		!before.LastSentAt.Equal(after.LastSentAt) || before.State != after.State || !equalTimes(before.PassedAt, after.PassedAt) ||
		!bytes.Equal(before.LinkHash, after.LinkHash) ||
		before.Delivery != after.Delivery
}

func equalTimes(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
