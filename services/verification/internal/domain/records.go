package domain

import (
	"cmp"
	"io"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/pii"
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
}

// TailHash is the keyed hash of one ID tail a verifier may answer with.
type TailHash struct {
	KeyID string
	Hash  []byte
}

// Outbox targets this service writes; server.Run maps each to a peer client.
const (
	TargetSendMessage    = "smsdispatch.SendMessage"
	TargetMarkVerified   = "filing.MarkVerified"
	TargetReturnOrder    = "filing.ReturnOrder"
	TargetCancelDeadline = "deadline.CancelDeadline"
)

// Effect is one call this service owes another, written to the outbox with the change that caused it.
// Sensitive rows carry a code and are wiped if parked.
type Effect struct {
	Target    string
	Msg       proto.Message
	Sensitive bool
}

// CodeEffect owes sms-dispatch one message carrying the plaintext code of a challenge's generation.
func CodeEffect(sess Session, c Challenge, code string) Effect {
	return Effect{Target: TargetSendMessage, Sensitive: true, Msg: &smsv1.SendMessageRequest{
		MessageId:  MessageID(sess.ID, c.VerifierID, c.Generation),
		Phone:      c.Phone,
		Template:   smsv1.Template_TEMPLATE_VERIFICATION_CODE,
		Params:     map[string]string{"code": code, "deadline": sess.DeadlineAt.Format(time.RFC3339)},
		Locale:     sess.Locale,
		ExpireTime: timestamppb.New(sess.DeadlineAt),
		OrderId:    sess.OrderID,
		Sequence:   int32(c.Generation),
	}}
}

func cancelDeadline(sess Session) Effect {
	return Effect{Target: TargetCancelDeadline, Msg: &deadlinev1.CancelDeadlineRequest{
		RequestId: CancelDeadlineRequestID(sess.OrderID, sess.Submission), OrderId: sess.OrderID, Submission: sess.Submission}}
}

func returnOrder(sess Session, reason filingv1.ReturnReason) Effect {
	return Effect{Target: TargetReturnOrder, Msg: &filingv1.ReturnOrderRequest{
		RequestId: ReturnRequestID(sess.OrderID, sess.Submission), OrderId: sess.OrderID, Submission: sess.Submission, Reason: reason}}
}

// PassedEffects are owed when the last verifier passes: filing marks the order verified, the timer goes.
func PassedEffects(sess Session) []Effect {
	return []Effect{{Target: TargetMarkVerified, Msg: &filingv1.MarkVerifiedRequest{
		RequestId: MarkVerifiedRequestID(sess.OrderID, sess.Submission), OrderId: sess.OrderID, Submission: sess.Submission}},
		cancelDeadline(sess)}
}

// LockedEffects are owed when a verifier reaches the failure limit: the order goes back, the timer goes.
func LockedEffects(sess Session) []Effect {
	return []Effect{returnOrder(sess, filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS), cancelDeadline(sess)}
}

// TimedOutEffects are owed when a session times out: the order goes back. The timer fired (or the
// deadline had passed before the session existed), so there is nothing to cancel.
func TimedOutEffects(sess Session) []Effect {
	return []Effect{returnOrder(sess, filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT)}
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
)

// DecideOpen chooses the OpenSession action. exists says whether (order_id, submission) has a session;
// latest is the highest submission of the order with a session (0: none).
func DecideOpen(now time.Time, exists bool, latest int32, spec OpenSpec) (OpenAction, error) {
	if exists {
		return OpenReplay, nil
	}
	if latest > spec.Submission {
		return 0, errs.FailedPrecondition(ReasonStaleSubmission, "a newer submission of this order already has a session")
	}
	if !now.Before(spec.DeadlineAt) {
		return OpenExpired, nil
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

// ResendAnswer is the answer to an accepted resend.
func ResendAnswer(now time.Time, sess Session, c Challenge, l Limits) *pb.Resend {
	r := &pb.Resend{OrderId: sess.OrderID, VerifierId: c.VerifierID,
		ResendsLeft: int32(ResendsLeft(c.ResendsUsed, l)), DeadlineAt: timestamppb.New(sess.DeadlineAt)}
	if r.ResendsLeft > 0 {
		r.NextResendTime = timestamppb.New(now.Add(l.ResendInterval))
	}
	return r
}

// PassAnswer is the answer to a correct check; all says whether it completed the session.
func PassAnswer(sess Session, all bool) *pb.VerifyResponse {
	if all {
		return &pb.VerifyResponse{Result: pb.VerifyResult_VERIFY_RESULT_ALL_PASSED, OrderId: sess.OrderID,
			MessageZh: MessageAllZH, MessageEn: MessageAllEN}
	}
	return &pb.VerifyResponse{Result: pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS, OrderId: sess.OrderID,
		MessageZh: MessageWaitingZH, MessageEn: MessageWaitingEN}
}

// CompareVerifierIDs orders v1, v2, ..., v10 numerically.
func CompareVerifierIDs(a, b string) int {
	if c := cmp.Compare(len(a), len(b)); c != 0 {
		return c
	}
	return cmp.Compare(a, b)
}

// Status is the public view of a session and its challenges; phones are masked.
func Status(sess Session, chs []Challenge) *pb.VerificationStatus {
	chs = slices.Clone(chs)
	slices.SortFunc(chs, func(a, b Challenge) int { return CompareVerifierIDs(a.VerifierID, b.VerifierID) })
	st := &pb.VerificationStatus{OrderId: sess.OrderID, Submission: sess.Submission, State: sessionStateProto(sess.State),
		DeadlineAt: timestamppb.New(sess.DeadlineAt)}
	for _, c := range chs {
		v := &pb.VerifierStatus{VerifierId: c.VerifierID, PhoneMasked: pii.MaskPhone(c.Phone), Roles: slices.Clone(c.Roles),
			State: challengeStateProto(c.State), FailedAttempts: int32(c.Failed), ResendsUsed: int32(c.ResendsUsed),
			LastSentTime: timestamppb.New(c.LastSentAt)}
		if c.PassedAt != nil {
			v.PassedTime = timestamppb.New(*c.PassedAt)
		}
		st.Verifiers = append(st.Verifiers, v)
	}
	return st
}

func sessionStateProto(s SessionState) pb.SessionState {
	switch s {
	case SessionOpen:
		return pb.SessionState_SESSION_STATE_OPEN
	case SessionPassed:
		return pb.SessionState_SESSION_STATE_PASSED
	case SessionFailed:
		return pb.SessionState_SESSION_STATE_FAILED
	case SessionTimedOut:
		return pb.SessionState_SESSION_STATE_TIMED_OUT
	case SessionCancelled:
		return pb.SessionState_SESSION_STATE_CANCELLED
	}
	return pb.SessionState_SESSION_STATE_UNSPECIFIED
}

func challengeStateProto(s ChallengeState) pb.ChallengeState {
	switch s {
	case ChallengePending:
		return pb.ChallengeState_CHALLENGE_STATE_PENDING
	case ChallengePassed:
		return pb.ChallengeState_CHALLENGE_STATE_PASSED
	case ChallengeLocked:
		return pb.ChallengeState_CHALLENGE_STATE_LOCKED
	}
	return pb.ChallengeState_CHALLENGE_STATE_UNSPECIFIED
}

// RedactOpenRequest is the OpenSession request as the idempotency table may hash it: phones and ID
// tails replaced by keyed fingerprints, since an unkeyed hash of them could be reversed by brute force.
func RedactOpenRequest(req *pb.OpenSessionRequest, h *Hasher) *pb.OpenSessionRequest {
	out := proto.Clone(req).(*pb.OpenSessionRequest)
	for _, v := range out.GetVerifiers() {
		v.Phone = h.Fingerprint("phone", v.GetPhone())
		for i, t := range v.GetIdTails() {
			v.IdTails[i] = h.Fingerprint("idtail", t)
		}
	}
	return out
}

// ErrSessionNotFound answers an unknown (order_id, submission) or order.
func ErrSessionNotFound() error {
	return errs.NotFound(ReasonSessionNotFound, "no verification session for this order submission")
}

// CandidateOf is the state part of a check candidate; the hash comparisons are the Hasher's.
func CandidateOf(sess Session, c Challenge) Candidate {
	return Candidate{SessionState: sess.State, ChallengeState: c.State, DeadlineAt: sess.DeadlineAt, FailedAttempts: c.Failed}
}

// Candidate compares one entry with a challenge: its code and its ID tails.
func (h *Hasher) Candidate(sess Session, c Challenge, tails []TailHash, code, tail string) Candidate {
	cand := CandidateOf(sess, c)
	cand.CodeMatches = h.VerifyCode(c.CodeKeyID, c.CodeHash, c.ID, code)
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
// challenges with freshly drawn code hashes and their ID-tail hashes (by challenge id), and the effects
// to queue. An expired session is born TIMED_OUT with no challenges: no code is drawn or sent, and the
// order is returned.
func NewSession(now time.Time, newID func() string, spec OpenSpec, action OpenAction, h *Hasher, rnd io.Reader) (
	Session, []Challenge, map[string][]TailHash, []Effect, error) {
	sess := Session{ID: newID(), OrderID: spec.OrderID, Submission: spec.Submission, State: SessionOpen,
		DeadlineAt: spec.DeadlineAt.UTC(), Locale: spec.Locale, CreatedAt: now}
	if action == OpenExpired {
		sess.State = SessionTimedOut
		return sess, nil, nil, TimedOutEffects(sess), nil
	}
	chs := make([]Challenge, 0, len(spec.Verifiers))
	tails := map[string][]TailHash{}
	var effects []Effect
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
		effects = append(effects, CodeEffect(sess, c, code))
	}
	return sess, chs, tails, effects, nil
}

// PrepareResend applies the resend rules to a verifier at now and, if allowed, draws a new code and
// updates c (hash, generation, count, time). It returns the plaintext code for the SMS.
func PrepareResend(now time.Time, sess Session, c *Challenge, l Limits, h *Hasher, rnd io.Reader) (string, error) {
	if err := CheckResend(now, ResendState{SessionState: sess.State, ChallengeState: c.State,
		DeadlineAt: sess.DeadlineAt, ResendsUsed: c.ResendsUsed, LastSentAt: c.LastSentAt}, l); err != nil {
		return "", err
	}
	code, err := NewCode(rnd)
	if err != nil {
		return "", err
	}
	kid, sum := h.HashCode(c.ID, code)
	c.CodeKeyID, c.CodeHash = kid, sum
	c.Generation++
	c.ResendsUsed++
	c.LastSentAt = now
	return code, nil
}

// Tombstone is the CANCELLED session a cancel leaves when it overtakes OpenSession, so the late open
// finds it and sends nothing.
func Tombstone(now time.Time, id, orderID string, submission int32) Session {
	return Session{ID: id, OrderID: orderID, Submission: submission, State: SessionCancelled, DeadlineAt: now,
		Locale: DefaultLocale, CreatedAt: now}
}
