// Package convert is where verification's domain meets the wire: the protobuf form of answers and
// status, the request as idempotency may keep it, and the calls a change owes sms-dispatch, filing and
// deadline (outbox messages with their targets), so each is written once for every engine.
package convert

import (
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pii"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// Outbox targets this service writes; server.Run maps each to a peer client.
const (
	TargetSendMessage    = "smsdispatch.SendMessage"
	TargetMarkVerified   = "filing.MarkVerified"
	TargetReturnOrder    = "filing.ReturnOrder"
	TargetCancelDeadline = "deadline.CancelDeadline"
	TargetScheduleNoon   = "deadline.ScheduleNoonResend"
)

// ScheduleNoonMessage owes deadline the noon resend timer of a session, due at.
func ScheduleNoonMessage(sess domain.Session, at time.Time) outbox.Message {
	return outbox.Message{Target: TargetScheduleNoon, Msg: &deadlinev1.ScheduleNoonResendRequest{
		RequestId: domain.ScheduleNoonRequestID(sess.OrderID, sess.Submission), OrderId: sess.OrderID, Submission: sess.Submission,
		ResendTime: timestamppb.New(at)}}
}

// AutoResendOutcome is the enum form of an AutoResend outcome.
func AutoResendOutcome(o domain.AutoResendOutcome) pb.AutoResendOutcome {
	switch o {
	case domain.AutoResendSent:
		return pb.AutoResendOutcome_AUTO_RESEND_OUTCOME_SENT
	case domain.AutoResendAlreadySent:
		return pb.AutoResendOutcome_AUTO_RESEND_OUTCOME_ALREADY_SENT
	case domain.AutoResendSessionClosed:
		return pb.AutoResendOutcome_AUTO_RESEND_OUTCOME_SESSION_CLOSED
	case domain.AutoResendDisabled:
		return pb.AutoResendOutcome_AUTO_RESEND_OUTCOME_DISABLED
	}
	return pb.AutoResendOutcome_AUTO_RESEND_OUTCOME_UNSPECIFIED
}

// CodeMessage owes sms-dispatch one message carrying the plaintext code of a challenge's generation
// and, when link is not empty, its verification link (params.link).
func CodeMessage(sess domain.Session, c domain.Challenge, code, link string) outbox.Message {
	params := map[string]string{"code": code, "deadline": sess.DeadlineAt.Format(time.RFC3339)}
	if link != "" {
		params["link"] = link
	}
	return outbox.Message{Target: TargetSendMessage, Sensitive: true, Msg: &smsv1.SendMessageRequest{
		MessageId:  domain.MessageID(sess.ID, c.VerifierID, c.Generation),
		Phone:      c.Phone,
		Template:   smsv1.Template_TEMPLATE_VERIFICATION_CODE,
		Params:     params,
		Locale:     sess.Locale,
		ExpireTime: timestamppb.New(sess.DeadlineAt),
		OrderId:    sess.OrderID,
		Sequence:   int32(c.Generation),
	}}
}

func cancelDeadline(sess domain.Session) outbox.Message {
	return outbox.Message{Target: TargetCancelDeadline, Msg: &deadlinev1.CancelDeadlineRequest{
		RequestId: domain.CancelDeadlineRequestID(sess.OrderID, sess.Submission), OrderId: sess.OrderID, Submission: sess.Submission}}
}

func returnOrder(sess domain.Session, reason filingv1.ReturnReason, locks ...*filingv1.PhoneLock) outbox.Message {
	return outbox.Message{Target: TargetReturnOrder, Msg: &filingv1.ReturnOrderRequest{
		RequestId: domain.ReturnRequestID(sess.OrderID, sess.Submission), OrderId: sess.OrderID, Submission: sess.Submission, Reason: reason,
		PhoneLocks: locks}}
}

// PhoneLock is the lock of a phone whose failure budget is spent, for filing to refuse a
// resubmission naming it before until.
func PhoneLock(phone string, until time.Time) *filingv1.PhoneLock {
	return &filingv1.PhoneLock{Phone: phone, Until: timestamppb.New(until)}
}

// PhoneLockedMessages are owed by a session failed because a phone's budget is spent (a check
// spent it, or a new session named a locked phone): the order goes back with the lock, so filing
// refuses a resubmission before until; the timer goes.
func PhoneLockedMessages(sess domain.Session, phone string, until time.Time) []outbox.Message {
	return []outbox.Message{returnOrder(sess, filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS, PhoneLock(phone, until)),
		cancelDeadline(sess)}
}

// ReturnedMessages are owed by the sessions a mismatch on phone failed (domain.PhoneEffects).
func ReturnedMessages(sessions map[string]domain.Session, phone string, e domain.PhoneEffects) []outbox.Message {
	var msgs []outbox.Message
	for _, id := range e.Returned {
		if e.LockedUntil.IsZero() {
			msgs = append(msgs, LockedMessages(sessions[id])...)
		} else {
			msgs = append(msgs, PhoneLockedMessages(sessions[id], phone, e.LockedUntil)...)
		}
	}
	return msgs
}

// PassedMessages are owed when the last verifier passes: filing marks the order verified, the timer goes.
func PassedMessages(sess domain.Session) []outbox.Message {
	return []outbox.Message{{Target: TargetMarkVerified, Msg: &filingv1.MarkVerifiedRequest{
		RequestId: domain.MarkVerifiedRequestID(sess.OrderID, sess.Submission), OrderId: sess.OrderID, Submission: sess.Submission}},
		cancelDeadline(sess)}
}

// LockedMessages are owed when a verifier reaches the failure limit: the order goes back, the timer goes.
func LockedMessages(sess domain.Session) []outbox.Message {
	return []outbox.Message{returnOrder(sess, filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS), cancelDeadline(sess)}
}

// TimedOutMessages are owed when a session times out: the order goes back. The timer fired (or the
// deadline had passed before the session existed), so there is nothing to cancel.
func TimedOutMessages(sess domain.Session) []outbox.Message {
	return []outbox.Message{returnOrder(sess, filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT)}
}

// OpenMessages are the calls a new session owes: a code message per challenge (codes[i] and links[i]
// are chs[i]'s), or, for a session born TIMED_OUT, the order's return.
func OpenMessages(sess domain.Session, chs []domain.Challenge, codes, links []string) []outbox.Message {
	if sess.State == domain.SessionTimedOut {
		return TimedOutMessages(sess)
	}
	msgs := make([]outbox.Message, len(chs))
	for i, c := range chs {
		msgs[i] = CodeMessage(sess, c, codes[i], links[i])
	}
	return msgs
}

// ResendAnswer is the answer to an accepted resend of verifier c, whose code before it was previous's.
func ResendAnswer(now time.Time, sess domain.Session, previous, c domain.Challenge, l domain.Limits) *pb.Resend {
	r := &pb.Resend{OrderId: sess.OrderID, VerifierId: c.VerifierID,
		ResendsLeft: int32(domain.ResendsLeft(c.ResendsUsed, l)), DeadlineAt: timestamppb.New(sess.DeadlineAt),
		PreviousDelivery: codeDeliveryProto(previous)}
	if r.ResendsLeft > 0 {
		r.NextResendTime = timestamppb.New(now.Add(l.ResendInterval))
	}
	return r
}

// PassAnswer is the answer to a correct check; all says whether it completed the session.
func PassAnswer(sess domain.Session, all bool) *pb.VerifyResponse {
	if all {
		return &pb.VerifyResponse{Result: pb.VerifyResult_VERIFY_RESULT_ALL_PASSED, OrderId: sess.OrderID,
			MessageZh: domain.MessageAllZH, MessageEn: domain.MessageAllEN}
	}
	return &pb.VerifyResponse{Result: pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS, OrderId: sess.OrderID,
		MessageZh: domain.MessageWaitingZH, MessageEn: domain.MessageWaitingEN}
}

// LinkAnswer is GetLink's answer for a live link: the masked phone, the deadline and the SMS locale.
func LinkAnswer(r domain.LinkRecord) *pb.GetLinkResponse {
	return &pb.GetLinkResponse{PhoneMasked: pii.MaskPhone(r.Challenge.Phone), State: challengeStateProto(r.Challenge.State),
		DeadlineAt: timestamppb.New(r.Session.DeadlineAt), Locale: r.Session.Locale}
}

// Status is the public view of a session and its challenges; phones are masked.
func Status(sess domain.Session, chs []domain.Challenge) *pb.VerificationStatus {
	chs = slices.Clone(chs)
	slices.SortFunc(chs, func(a, b domain.Challenge) int { return domain.CompareVerifierIDs(a.VerifierID, b.VerifierID) })
	st := &pb.VerificationStatus{OrderId: sess.OrderID, Submission: sess.Submission, State: sessionStateProto(sess.State),
		DeadlineAt: timestamppb.New(sess.DeadlineAt)}
	for _, c := range chs {
		v := &pb.VerifierStatus{VerifierId: c.VerifierID, PhoneMasked: pii.MaskPhone(c.Phone), Roles: slices.Clone(c.Roles),
			State: challengeStateProto(c.State), FailedAttempts: int32(c.Failed), ResendsUsed: int32(c.ResendsUsed),
			LastSentTime: timestamppb.New(c.LastSentAt), CodeUndelivered: c.CodeVoid(), Delivery: codeDeliveryProto(c)}
		if c.PassedAt != nil {
			v.PassedTime = timestamppb.New(*c.PassedAt)
		}
		st.Verifiers = append(st.Verifiers, v)
	}
	return st
}

func sessionStateProto(s domain.SessionState) pb.SessionState {
	switch s {
	case domain.SessionOpen:
		return pb.SessionState_SESSION_STATE_OPEN
	case domain.SessionPassed:
		return pb.SessionState_SESSION_STATE_PASSED
	case domain.SessionFailed:
		return pb.SessionState_SESSION_STATE_FAILED
	case domain.SessionTimedOut:
		return pb.SessionState_SESSION_STATE_TIMED_OUT
	case domain.SessionCancelled:
		return pb.SessionState_SESSION_STATE_CANCELLED
	}
	return pb.SessionState_SESSION_STATE_UNSPECIFIED
}

func challengeStateProto(s domain.ChallengeState) pb.ChallengeState {
	switch s {
	case domain.ChallengePending:
		return pb.ChallengeState_CHALLENGE_STATE_PENDING
	case domain.ChallengePassed:
		return pb.ChallengeState_CHALLENGE_STATE_PASSED
	case domain.ChallengeLocked:
		return pb.ChallengeState_CHALLENGE_STATE_LOCKED
	}
	return pb.ChallengeState_CHALLENGE_STATE_UNSPECIFIED
}

// RedactOpenRequest is the OpenSession request as the idempotency table may hash it: phones and ID
// tails replaced by keyed fingerprints, since an unkeyed hash of them could be reversed by brute force.
func RedactOpenRequest(req *pb.OpenSessionRequest, h *domain.Hasher) *pb.OpenSessionRequest {
	out := proto.Clone(req).(*pb.OpenSessionRequest)
	for _, v := range out.GetVerifiers() {
		v.Phone = h.Fingerprint("phone", v.GetPhone())
		for i, t := range v.GetIdTails() {
			v.IdTails[i] = h.Fingerprint("idtail", t)
		}
	}
	return out
}

// DeliveryStateFromProto is the domain form of a report's state ("" for UNSPECIFIED or unknown).
func DeliveryStateFromProto(s pb.DeliveryState) domain.DeliveryState {
	switch s {
	case pb.DeliveryState_DELIVERY_STATE_FAILED:
		return domain.DeliveryFailed
	case pb.DeliveryState_DELIVERY_STATE_DELIVERED:
		return domain.DeliveryDelivered
	case pb.DeliveryState_DELIVERY_STATE_UNDELIVERED:
		return domain.DeliveryUndelivered
	case pb.DeliveryState_DELIVERY_STATE_AT_RISK:
		return domain.DeliveryAtRisk
	}
	return ""
}

// codeDeliveryProto is what VerifierStatus.delivery shows of c's current code: undelivered whenever
// the code was voided (code_undelivered), else what the carrier said.
func codeDeliveryProto(c domain.Challenge) pb.CodeDelivery {
	switch {
	case c.CodeVoid() || c.Delivery == domain.CodeUndelivered:
		return pb.CodeDelivery_CODE_DELIVERY_UNDELIVERED
	case c.Delivery == domain.CodeDelivered:
		return pb.CodeDelivery_CODE_DELIVERY_DELIVERED
	case c.Delivery == domain.CodeAtRisk:
		return pb.CodeDelivery_CODE_DELIVERY_AT_RISK
	}
	return pb.CodeDelivery_CODE_DELIVERY_PENDING
}
