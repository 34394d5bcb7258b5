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

//
// The carrier's receipts come the same way. UNDELIVERED voids the code as FAILED does (domain.md:
// the code reached nobody; the person should use another number, and a resend is allowed under the
// usual limits). DELIVERED and AT_RISK (no receipt in time) change only what the status shows. Each
// applies to the challenge's current code only: a report of an older generation changes nothing.

// DeliveryState is a reported outcome of one message.
type DeliveryState string

// The delivery states.
const (
	DeliveryFailed      DeliveryState = "FAILED"
	DeliveryDelivered   DeliveryState = "DELIVERED"
	DeliveryUndelivered DeliveryState = "UNDELIVERED"
	DeliveryAtRisk      DeliveryState = "AT_RISK"
)

// CodeDelivery is what is known of the SMS of a challenge's current code (VerifierStatus.delivery).
type CodeDelivery string

// The code deliveries; a new code starts pending.
const (
	CodePending     CodeDelivery = ""
	CodeDelivered   CodeDelivery = "DELIVERED"
	CodeUndelivered CodeDelivery = "UNDELIVERED"
	CodeAtRisk      CodeDelivery = "AT_RISK"
)

// Final tells whether d is the carrier's last word (DELIVERED, UNDELIVERED): no report changes it.
func (d CodeDelivery) Final() bool { return d == CodeDelivered || d == CodeUndelivered }

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
// shape error (it is answered as unknown: ApplyDelivery finds nothing).
func CheckDeliveryReport(r DeliveryReport) error {
	if r.MessageID == "" || len(r.MessageID) > MaxMessageIDLength {
		return errs.Invalid("message_id", ReasonInvalidMessageID, "message_id is required, at most %d characters", MaxMessageIDLength)
	}
	if err := orderid.Check("order_id", r.OrderID); err != nil {
		return err
	}
	switch r.State {
	case DeliveryFailed, DeliveryDelivered, DeliveryUndelivered, DeliveryAtRisk:
	default:
		return errs.Invalid("state", ReasonInvalidDeliveryState, "state must be a DeliveryState other than UNSPECIFIED")
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

// ApplyDelivery applies a report to an order's sessions: to the challenge whose current message is
// r.MessageID, if it is still pending in an open session. FAILED and UNDELIVERED void its code and
// make it UNDELIVERED; DELIVERED and AT_RISK set what is known. The carrier's last word stays: a
// final delivery (DELIVERED, UNDELIVERED) is never changed, so AT_RISK arriving after DELIVERED, or a
// contrary final report, changes nothing. It returns the session and challenge it changed, and
// whether it voided the code, or nils when the report changes nothing (another order's or an unknown
// message, an older generation, a passed, locked or closed verifier, a repeat).
func ApplyDelivery(o *OrderSessions, r DeliveryReport) (*SessionRecord, *Challenge, bool) {
	sessionID, verifierID, gen, ok := ParseMessageID(r.MessageID)
	if !ok {
		return nil, nil, false
	}
	for i := range o.Sessions {
		rec := &o.Sessions[i]
		if rec.ID != sessionID {
			continue
		}
		c := rec.Challenge(verifierID)
		if c == nil || c.Generation != gen || rec.State != SessionOpen || c.State != ChallengePending {
			return nil, nil, false
		}
		switch r.State {
		case DeliveryFailed, DeliveryUndelivered:
			if c.Delivery == CodeDelivered || (c.CodeVoid() && c.Delivery == CodeUndelivered) {
				return nil, nil, false
			}
			voided := !c.CodeVoid()
			c.VoidCode()
			c.Delivery = CodeUndelivered
			return rec, c, voided
		case DeliveryDelivered, DeliveryAtRisk:
			next := CodeDelivered
			if r.State == DeliveryAtRisk {
				next = CodeAtRisk
			}
			if c.Delivery.Final() || c.Delivery == next || c.CodeVoid() {
				return nil, nil, false
			}
			c.Delivery = next
			return rec, c, false
		}
		return nil, nil, false
	}
	return nil, nil, false
}
