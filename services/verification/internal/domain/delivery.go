package domain

import (
	"strconv"
	"strings"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/orderid"
)

// Delivery reports (ReportDelivery): sms-dispatch tells verification what became of a code's SMS.
// A code whose SMS no provider accepted (over the per-phone caps, expired, refused every attempt)
// reached nobody, so nobody can type it but a guesser: it is voided, and only a resend's new code
// can pass. That takes every undelivered code out of what a guess is compared with (security
// review H1: K orders for one phone gave K live codes, most of them never sent).
//
// A check with a voided code is a wrong code like any other: it answers the uniform mismatch and
// counts one failure, towards the verifier's limit and the phone's budget. Nobody legitimately holds
// the code, so a person who waits for their SMS loses nothing, and treating it otherwise would tell a
// guesser which codes were voided. Voiding itself counts nothing and locks nothing: the verifier
// stays pending and a resend (ResendCode, ResendVerifierCode, under the usual limits) replaces the
// voided code with a new one at once.

// DeliveryState is a reported outcome of one message.
type DeliveryState string

// The delivery states. Only FAILED is reported today.
const (
	DeliveryFailed DeliveryState = "FAILED"
)

// DeliveryReport is a normalised ReportDelivery request.
type DeliveryReport struct {
	MessageID string
	OrderID   string
	State     DeliveryState
	Reason    string
}

// The limits and reasons of ReportDelivery's input.
const (
	MaxMessageIDLength      = 128 // sms-dispatch's limit on message ids
	MaxDeliveryReasonLength = 64

	ReasonInvalidMessageID      = "INVALID_MESSAGE_ID"
	ReasonInvalidDeliveryState  = "INVALID_DELIVERY_STATE"
	ReasonInvalidDeliveryReason = "INVALID_DELIVERY_REASON"
)

// CheckDeliveryReport checks the shape of a report; a message id verification did not make is no
// shape error (it is answered as unknown: VoidUndelivered finds nothing).
func CheckDeliveryReport(r DeliveryReport) error {
	if r.MessageID == "" || len(r.MessageID) > MaxMessageIDLength {
		return errs.Invalid("message_id", ReasonInvalidMessageID, "message_id is required, at most %d characters", MaxMessageIDLength)
	}
	if err := orderid.Check("order_id", r.OrderID); err != nil {
		return err
	}
	if r.State != DeliveryFailed {
		return errs.Invalid("state", ReasonInvalidDeliveryState, "state must be DELIVERY_STATE_FAILED")
	}
	if len(r.Reason) > MaxDeliveryReasonLength {
		return errs.Invalid("reason", ReasonInvalidDeliveryReason, "reason is at most %d bytes", MaxDeliveryReasonLength)
	}
	return nil
}

// ParseMessageID is MessageID read back: the session, verifier and generation of a code message, ok
// false for an id MessageID does not make.
func ParseMessageID(id string) (sessionID, verifierID string, generation int, ok bool) {
	rest, found := strings.CutPrefix(id, "vc-")
	if !found {
		return "", "", 0, false
	}
	i := strings.LastIndexByte(rest, '-')
	if i < 0 {
		return "", "", 0, false
	}
	gen, err := strconv.Atoi(rest[i+1:])
	if err != nil || gen < 1 {
		return "", "", 0, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '-')
	if j <= 0 {
		return "", "", 0, false
	}
	sessionID, verifierID = rest[:j], rest[j+1:]
	if verifierID == "" || MessageID(sessionID, verifierID, gen) != id {
		return "", "", 0, false
	}
	return sessionID, verifierID, gen, true
}

// CodeVoid tells whether the challenge's current code was voided (its SMS reached nobody): then no
// entry matches it until a resend stores a new code.
func (c Challenge) CodeVoid() bool { return len(c.CodeHash) == 0 }

// VoidCode voids the current code: its hash is dropped, so no entry can match it.
func (c *Challenge) VoidCode() { c.CodeHash = nil }

// VoidUndelivered applies a FAILED report to an order's sessions: it voids the code of the
// challenge whose current message is r.MessageID, if that challenge is still pending in an open
// session and its code is not void yet. It returns the session and challenge it changed, or nils
// when the report changes nothing (another order's or an unknown message, an older generation, a
// passed, locked or closed verifier, a repeat).
func VoidUndelivered(o *OrderSessions, r DeliveryReport) (*SessionRecord, *Challenge) {
	sessionID, verifierID, gen, ok := ParseMessageID(r.MessageID)
	if !ok || r.State != DeliveryFailed {
		return nil, nil
	}
	for i := range o.Sessions {
		rec := &o.Sessions[i]
		if rec.ID != sessionID {
			continue
		}
		c := rec.Challenge(verifierID)
		if c == nil || c.Generation != gen || rec.State != SessionOpen || c.State != ChallengePending || c.CodeVoid() {
			return nil, nil
		}
		c.VoidCode()
		return rec, c
	}
	return nil, nil
}
