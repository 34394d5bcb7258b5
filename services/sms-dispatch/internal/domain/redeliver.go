package domain

import (
	"slices"
	"time"
)

// Redelivery (failover only): a message SENT by one provider that the carrier reports UNDELIVERED,
// or that the AT_RISK sweep finds without a receipt, goes out again, under the same message id,
// through the next provider that never had it, while it has tries left, its window is open and no
// newer message of its thread replaced it. Until then nothing is reported to verification: the
// person's code stays valid; the final truth is reported once no redelivery is left.
//
// Whether a message may be redelivered is settled when it is marked SENT (Redeliverable): the
// provider list and the hand-offs are known then, and its text (which holds the code) is kept
// sealed only for such a message, and wiped once it reaches a final state. A provider that had the
// message, or may have had it (its outcome unknown), before a redelivery is barred: it never gets
// it again, idempotent or not, and its late DELIVERED receipt still counts (ApplyEarlierReceipt).
//
// The carrier's code of an UNDELIVERED receipt is not used to tell a bad number from a network
// failure: the codes (CMPP's MK:/MN:/MI: stat codes, the clouds' receipt codes) differ per carrier
// and gateway and mix empty numbers with switched-off phones, so they cannot be told apart
// reliably. A number the gateway refuses at submission (provider.Permanent) is never SENT, hence
// never redelivered; any other is redelivered at most Redelivery.Tries times.

// Redelivery is the configuration of redeliveries: Tries per message (0: off) over the failover
// Providers, in order.
type Redelivery struct {
	Tries     int
	Providers []string
}

// On tells whether a message may be redelivered at all: tries, and more than one provider.
func (r Redelivery) On() bool { return r.Tries > 0 && len(r.Providers) > 1 }

// Redeliverable tells whether a message just SENT by provider, redelivered done times before, may be
// redelivered later: r is on, a try is left, and a provider of the list other than this one never
// had it (had tells whether a provider has, or may have, it: a hand-off it did not refuse).
func (r Redelivery) Redeliverable(provider string, done int, had func(provider string) bool) bool {
	if !r.On() || done >= r.Tries {
		return false
	}
	return slices.ContainsFunc(r.Providers, func(p string) bool { return p != provider && !had(p) })
}

// RedeliverNow tells whether a redeliverable message found UNDELIVERED or overdue at now goes out
// again: its window is open and it is not superseded (a newer message of its thread exists, so its
// code was replaced).
func RedeliverNow(redeliverable, superseded bool, expireAt, now time.Time) bool {
	return redeliverable && !superseded && now.Before(expireAt)
}

// The last_error of a message queued again for a redelivery.
const (
	ErrorRedeliverUndelivered = "redelivering: the carrier reported it undelivered"
	ErrorRedeliverNoReceipt   = "redelivering: no delivery receipt in time"
)

// ReceiptRedelivered: an UNDELIVERED receipt queued the message again for a redelivery through
// another provider; nothing was reported.
const ReceiptRedelivered ReceiptOutcome = "redelivered"

// ApplyEarlierReceipt applies r, from a provider barred by a redelivery of m (it had m before), to
// m. Its DELIVERED counts while m is not final (QUEUED for the redelivery, SENT by the next provider,
// AT_RISK): the person got the code. Its UNDELIVERED was already acted on (the redelivery), or is
// overtaken by it: a repeat. A final m never changes (ApplyReceipt's rule).
func ApplyEarlierReceipt(m *Message, r Receipt) ReceiptOutcome {
	switch m.State {
	case StateFailed:
		return ReceiptIgnored
	case StateDelivered, StateUndelivered:
		return ReceiptRepeat
	}
	if !r.Delivered {
		return ReceiptRepeat
	}
	m.State, m.DeliveryCode, m.ReceiptAt = StateDelivered, ReceiptCode(r.Code), r.At
	return ReceiptApplied
}

// Swept is what one AT_RISK sweep did: messages marked AT_RISK (reported), and messages queued
// again for a redelivery instead.
type Swept struct {
	AtRisk      int
	Redelivered int
}

// Total is how many messages the sweep took.
func (s Swept) Total() int { return s.AtRisk + s.Redelivered }
