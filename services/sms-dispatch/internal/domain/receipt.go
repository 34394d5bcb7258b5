package domain

import (
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultAtRiskAfter is how long a SENT message may wait for its receipt before it is AT_RISK.
const DefaultAtRiskAfter = 10 * time.Minute

// Receipt is a carrier's delivery report on one message, as a provider's receipt endpoint (or the
// CMPP client's DELIVER) gives it: named by the provider's id of the message and, where the
// provider echoes it (aliyun out_id, the webhook), by our message id.
type Receipt struct {
	Provider   string
	ProviderID string
	MessageID  string
	Delivered  bool
	// Code is the carrier's status code (DELIVRD, UNDELIV, MK:0001…), cut by ReceiptCode.
	Code string
	// At is when the receipt arrived (the service's clock: a provider's times are not trusted to order).
	At time.Time
}

// MaxReceiptID bounds a receipt's ids and code as stored.
const (
	MaxReceiptID   = 128
	MaxReceiptCode = 32
)

// ReceiptCode makes a carrier code fit to store and show: control characters and digit runs that
// could be a phone dropped, cut to MaxReceiptCode bytes.
func ReceiptCode(code string) string {
	code = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, strings.ToValidUTF8(strings.TrimSpace(code), ""))
	for len(code) > MaxReceiptCode {
		_, n := utf8.DecodeLastRuneInString(code)
		code = code[:len(code)-n]
	}
	return code
}

// ReceiptOutcome is what a receipt did to its message.
type ReceiptOutcome string

// The outcomes (also the result label of icp_sms_receipts_total).
const (
	// ReceiptApplied: the message became DELIVERED or UNDELIVERED.
	ReceiptApplied ReceiptOutcome = "applied"
	// ReceiptRepeat: the message already has its final state (the same receipt again, another
	// segment's, or a later contrary one): nothing changes.
	ReceiptRepeat ReceiptOutcome = "repeat"
	// ReceiptParked: the message is not marked SENT yet (the receipt overtook the SENT commit, or no
	// message has the id yet): the receipt is kept and applied when the message is marked SENT.
	ReceiptParked ReceiptOutcome = "parked"
	// ReceiptIgnored: the message FAILED (a stale claim's acceptance): the receipt changes nothing.
	ReceiptIgnored ReceiptOutcome = "ignored"
	// ReceiptUnknown: no message has the ids (yet). It is parked like ReceiptParked, since its
	// SENT commit may still come, and dropped after ParkedReceiptTTL.
	ReceiptUnknown ReceiptOutcome = "unknown"
)

// ParkedReceiptTTL is how long a parked receipt waits for its message's SENT mark: a code lives a
// day at most, so a receipt older than that can only be for nothing we sent.
const ParkedReceiptTTL = 24 * time.Hour

// ApplyReceipt applies r to m and tells what it did. The rule that makes receipts idempotent and
// their order irrelevant: the first final state a message reaches is its last. SENT and AT_RISK take
// the receipt's DELIVERED or UNDELIVERED with its code; DELIVERED and UNDELIVERED never change again
// (a repeat is the same state; a contrary one, e.g. UNDELIVERED after DELIVERED, is a later segment's
// or a carrier's retry and loses); FAILED ignores receipts; a QUEUED message parks it (RecordReceipt
// keeps it, and MarkSent applies the earliest parked receipt of the message's ids).
func ApplyReceipt(m *Message, r Receipt) ReceiptOutcome {
	switch m.State {
	case StateQueued:
		return ReceiptParked
	case StateFailed:
		return ReceiptIgnored
	case StateDelivered, StateUndelivered:
		return ReceiptRepeat
	}
	m.State, m.DeliveryCode, m.ReceiptAt = StateUndelivered, ReceiptCode(r.Code), r.At
	if r.Delivered {
		m.State = StateDelivered
	}
	return ReceiptApplied
}

// AtRisk tells whether m, SENT at m.SentAt, has waited for its receipt past after at now.
func AtRisk(m Message, now time.Time, after time.Duration) bool {
	return m.State == StateSent && !m.SentAt.IsZero() && !m.SentAt.After(now.Add(-after))
}

// ParkKey is the key a receipt is parked under: the provider's id, or our message id when the
// receipt has no provider id (a webhook gateway that answers none).
func ParkKey(r Receipt) string {
	if r.ProviderID != "" {
		return r.ProviderID
	}
	return "id:" + r.MessageID
}

// ParkKeys are the keys under which receipts for m (its provider ids, its message id) are parked.
func ParkKeys(m Message) []string {
	return append(append([]string(nil), m.ProviderIDs...), "id:"+m.ID)
}
