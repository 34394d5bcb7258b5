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
// id) and ID-tail hashes (by challenge id), as a use case on the phone sees them. Challenges are in
// id order.
type PhoneChallenges struct {
	Sessions   map[string]Session
	Challenges []Challenge
	Tails      map[string][]TailHash
}

// ApplyFailures counts one more failure on each challenge of fs (DecideVerify's or
// DecideResendByPhone's) and, at the limit, locks it and fails its session. It returns the indexes of
// the challenges it locked.
func (p *PhoneChallenges) ApplyFailures(fs []Failure) (locked []int) {
	for _, f := range fs {
		c := &p.Challenges[f.Index]
		c.Failed = f.FailedAttempts
		if f.Lock {
			c.State = ChallengeLocked
			sess := p.Sessions[c.SessionID]
			sess.State = SessionFailed
			p.Sessions[c.SessionID] = sess
			locked = append(locked, f.Index)
		}
	}
	return locked
}

// ChallengeChanged tells whether a use case changed any stored field of a challenge.
func ChallengeChanged(before, after Challenge) bool {
	return !bytes.Equal(before.CodeHash, after.CodeHash) || before.CodeKeyID != after.CodeKeyID ||
		before.Generation != after.Generation || before.Failed != after.Failed || before.ResendsUsed != after.ResendsUsed ||
		!before.LastSentAt.Equal(after.LastSentAt) || before.State != after.State || !equalTimes(before.PassedAt, after.PassedAt)
}

func equalTimes(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Equal(*b)
}
