package domain

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// Session is one submission's verification as both storage engines keep it.
type Session struct {
	ID         string
	OrderID    string
	Submission int32
	State      SessionState
	DeadlineAt time.Time
	Locale     string
	CreatedAt  time.Time
	// Tenant owns the session (the order's tenant): only it, or a cross-tenant caller, sees it.
	Tenant string
	// AutoResentAt is when the noon resend was made (zero: not yet); it makes AutoResend once only.
	AutoResentAt time.Time
}

// Challenge is one verifier of a session. The code exists only as CodeHash (made with key CodeKeyID).
type Challenge struct {
	ID, SessionID, VerifierID, Phone string
	Roles                            []string
	CodeHash                         []byte
	CodeKeyID                        string
	Generation, Failed, ResendsUsed  int
	LastSentAt                       time.Time
	State                            ChallengeState
	PassedAt                         *time.Time
	// LinkHash is the SHA-256 of the current generation's link token (link.go); nil for rows from
	// before links.
	LinkHash []byte
	// Delivery is what the carrier said of the current code's SMS (ApplyDelivery).
	Delivery CodeDelivery
}

// TailHash is the keyed hash of one ID tail a verifier may answer with.
type TailHash struct {
	KeyID string
	Hash  []byte
}

// OpenAction is what OpenSession does for a request.
type OpenAction int

// The OpenSession actions.
const (
	// OpenReplay answers with the existing session of (order_id, submission); nothing is drawn.
	OpenReplay OpenAction = iota
	// OpenNew creates an open session, draws the codes and sends them.
	OpenNew
	// OpenExpired records a session that is TIMED_OUT from the start (the request arrived at or after
	// deadline_at) and returns the order at once: refusing it would leave the order waiting for a
	// session the deadline sweeper can never close.
	OpenExpired
	// OpenPhoneLocked records a session that is FAILED from the start (a verifier's phone has spent
	// its failure budget): no code is drawn or sent, and the order is returned at once with the lock.
	OpenPhoneLocked
)

// LockedPhone returns the first verifier phone of spec locked at now (fs: counted failures by phone)
// and until when.
func LockedPhone(now time.Time, spec OpenSpec, fs map[string][]PhoneFailure) (phone string, until time.Time, ok bool) {
	for _, v := range spec.Verifiers {
		if u, locked := PhoneLockedUntil(now, fs[v.Phone]); locked {
			return v.Phone, u, true
		}
	}
	return "", time.Time{}, false
}

// DecideOpen chooses the OpenSession action. exists says whether (order_id, submission) has a session;
// latest is the highest submission of the order with a session (0: none); fs are the counted
// failures of the verifiers' phones.
func DecideOpen(now time.Time, exists bool, latest int32, spec OpenSpec, fs map[string][]PhoneFailure) (OpenAction, error) {
	if exists {
		return OpenReplay, nil
	}
	if latest > spec.Submission {
		return 0, errs.FailedPrecondition(ReasonStaleSubmission, "a newer submission of this order already has a session")
	}
	if !now.Before(spec.DeadlineAt) {
		return OpenExpired, nil
	}
	if _, _, locked := LockedPhone(now, spec, fs); locked {
		return OpenPhoneLocked, nil
	}
	return OpenNew, nil
}

// ResendCandidate is a pending challenge of the phone asking for a resend.
type ResendCandidate struct {
	Check       Candidate // for counting a failure when no tail matches
	TailMatches bool
	CreatedAt   time.Time // of the session
}

// DecideResendByPhone picks the verifier a public resend is for: among the challenges whose ID tail
// matches, the one of the newest session (several orders may wait on one person). With none, every
// checkable challenge of the phone counts one failure exactly as a wrong Verify does: otherwise the
// resend answers (sent / too soon / limit) would confirm a guessed ID tail at no cost.
func DecideResendByPhone(now time.Time, cands []ResendCandidate, maxFailed int) (found int, failures []Failure) {
	found = -1
	for i, c := range cands {
		if c.TailMatches && (found < 0 || c.CreatedAt.After(cands[found].CreatedAt)) {
			found = i
		}
	}
	if found >= 0 {
		return found, nil
	}
	checks := make([]Candidate, len(cands))
	for i, c := range cands {
		checks[i] = c.Check
		checks[i].CodeMatches = false
	}
	return -1, DecideVerify(now, checks, maxFailed).Failures
}

// CompareVerifierIDs orders v1, v2, ..., v10 numerically.
func CompareVerifierIDs(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// ErrSessionNotFound answers an unknown (order_id, submission) or order.
func ErrSessionNotFound() error {
	return errs.NotFound(ReasonSessionNotFound, "no verification session for this order submission")
}

// CandidateOf is the state part of a check candidate; the hash comparisons are the Hasher's.
func CandidateOf(sess Session, c Challenge) Candidate {
	return Candidate{SessionState: sess.State, ChallengeState: c.State, DeadlineAt: sess.DeadlineAt, FailedAttempts: c.Failed}
}

// Candidate compares one entry with a challenge: its code and its ID tails. A voided code
// (delivery.go) matches nothing; the comparison still costs its HMAC, so the time does not tell.
// A check through a link (link: the token's hash; nil: none) passes only that link's challenge; the
// others still count its failure as before.
func (h *Hasher) Candidate(sess Session, c Challenge, tails []TailHash, code, tail string, link []byte) Candidate {
	cand := CandidateOf(sess, c)
	cand.CodeMatches = h.VerifyCode(c.CodeKeyID, c.CodeHash, c.ID, code) && !c.CodeVoid() && LinkAllows(link, c)
	cand.TailMatches = h.TailMatches(c.ID, tails, tail)
	return cand
}

// TailMatches compares tail with every stored tail hash of a challenge without stopping early, so the
// time does not depend on which tail matched.
func (h *Hasher) TailMatches(challengeID string, tails []TailHash, tail string) bool {
	ok := false
	for _, t := range tails {
		if h.VerifyTail(t.KeyID, t.Hash, challengeID, tail) {
			ok = true
		}
	}
	return ok
}

// NewSession builds what OpenSession stores for action OpenNew or OpenExpired: the session, its
// challenges with freshly drawn code hashes and their ID-tail hashes (by challenge id), and the drawn
// codes (codes[i] is chs[i]'s, for the SMS). An expired session is born TIMED_OUT with no
// challenges: no code is drawn or sent, and the order is returned.
func NewSession(now time.Time, newID func() string, spec OpenSpec, action OpenAction, h *Hasher, rnd io.Reader) (
	sess Session, chs []Challenge, tails map[string][]TailHash, codes []string, err error) {
	sess = Session{ID: newID(), OrderID: spec.OrderID, Submission: spec.Submission, State: SessionOpen,
		DeadlineAt: spec.DeadlineAt.UTC(), Locale: spec.Locale, CreatedAt: now, Tenant: TenantOf(spec.Tenant)}
	switch action {
	case OpenExpired:
		sess.State = SessionTimedOut
		return sess, nil, nil, nil, nil
	case OpenPhoneLocked:
		sess.State = SessionFailed
		return sess, nil, nil, nil, nil
	}
	chs = make([]Challenge, 0, len(spec.Verifiers))
	tails = map[string][]TailHash{}
	for i, v := range spec.Verifiers {
		c := Challenge{ID: newID(), SessionID: sess.ID, VerifierID: VerifierID(i), Phone: v.Phone,
			Roles: append([]string{}, v.Roles...), Generation: 1, LastSentAt: now, State: ChallengePending}
		code, err := NewCode(rnd)
		if err != nil {
			return Session{}, nil, nil, nil, err
		}
		c.CodeKeyID, c.CodeHash = h.HashCode(c.ID, code)
		for _, t := range slices.Compact(slices.Sorted(slices.Values(v.Tails))) {
			kid, sum := h.HashTail(c.ID, t)
			tails[c.ID] = append(tails[c.ID], TailHash{KeyID: kid, Hash: sum})
		}
		chs = append(chs, c)
		codes = append(codes, code)
	}
	return sess, chs, tails, codes, nil
}

// PrepareResend applies the resend rules to a verifier at now and, if allowed, draws a new code and
// updates c (hash, generation, count, time). It returns the plaintext code for the SMS.
func PrepareResend(now time.Time, sess Session, c *Challenge, l Limits, h *Hasher, rnd io.Reader) (string, error) {
	if err := CheckResend(now, ResendState{SessionState: sess.State, ChallengeState: c.State,
		DeadlineAt: sess.DeadlineAt, ResendsUsed: c.ResendsUsed, LastSentAt: c.LastSentAt}, l); err != nil {
		return "", err
	}
	code, err := newCodeUnlike(rnd, h, c)
	if err != nil {
		return "", err
	}
	kid, sum := h.HashCode(c.ID, code)
	c.CodeKeyID, c.CodeHash = kid, sum
	c.Generation++
	c.Delivery = CodePending // the new code's SMS is a new message
	c.ResendsUsed++
	c.LastSentAt = now
	return code, nil
}

// newCodeUnlike draws a code other than the one c holds now: a resend never sends the verifier the
// code it received last (验证码不重复). Equal draws are one in a million, so a few tries suffice.
func newCodeUnlike(rnd io.Reader, h *Hasher, c *Challenge) (string, error) {
	for range 8 {
		code, err := NewCode(rnd)
		if err != nil || !h.VerifyCode(c.CodeKeyID, c.CodeHash, c.ID, code) {
			return code, err
		}
	}
	return "", fmt.Errorf("draw code: the random source keeps returning the previous code")
}

// Tombstone is the CANCELLED session a cancel leaves when it overtakes OpenSession, so the late open
// finds it and sends nothing.
func Tombstone(now time.Time, id, orderID string, submission int32) Session {
	return Session{ID: id, OrderID: orderID, Submission: submission, State: SessionCancelled, DeadlineAt: now,
		Locale: DefaultLocale, CreatedAt: now, Tenant: DevTenant}
}
