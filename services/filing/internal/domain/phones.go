package domain

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/pii"
)

// DefaultMaxOpenChallengesPerPhone is how many orders awaiting verification, across all tenants, may
// name one phone among their verifiers at once (security review H1: each wrong guess at a phone is
// compared with every pending code of the phone, so this bounds what one guess can hit; see
// docs/security.md).
const DefaultMaxOpenChallengesPerPhone = 3

// ReasonTooManyOpenChallenges refuses a submission whose verifier's phone has the most pending at once.
const ReasonTooManyOpenChallenges = "TOO_MANY_OPEN_CHALLENGES"

// PhoneSlots is what a submission asks of the engine: a pending challenge for each of Phones, at most
// Max per phone across every order awaiting verification (the submitting order's own not counted).
type PhoneSlots struct {
	Phones []string // E.164, distinct
	Max    int      // <= 0: no limit
}

// SlotsOf is the slots a planned submission takes: one per verifier's phone.
func SlotsOf(p Submission, max int) PhoneSlots {
	var phones []string
	for _, v := range p.Verifiers {
		phones = append(phones, v.Phone)
	}
	slices.Sort(phones)
	return PhoneSlots{Phones: slices.Compact(phones), Max: max}
}

// ReasonPhoneLocked refuses a submission naming a phone whose failure budget verification spent.
const ReasonPhoneLocked = "PHONE_LOCKED"

// PhoneLock: verification opens no challenge for Phone before Until (its failure budget is spent);
// ReturnOrder reports it, and no order naming the phone is submitted before then.
type PhoneLock struct {
	Phone string // E.164
	Until time.Time
}

// MergeLocks keeps the latest time per phone of locks (a batch writes each phone once).
func MergeLocks(locks []PhoneLock) []PhoneLock {
	latest := map[string]time.Time{}
	for _, l := range locks {
		if l.Until.After(latest[l.Phone]) {
			latest[l.Phone] = l.Until
		}
	}
	out := make([]PhoneLock, 0, len(latest))
	for p, u := range latest {
		out = append(out, PhoneLock{Phone: p, Until: u})
	}
	slices.SortFunc(out, func(a, b PhoneLock) int { return strings.Compare(a.Phone, b.Phone) })
	return out
}

// CheckSlots decides on what the engine read under a lock per phone (taken in Phones' order, so
// submissions never deadlock): the phones' locks still running at now, and the counts of other orders
// awaiting verification per phone.
func (s PhoneSlots) CheckSlots(now time.Time, locked map[string]time.Time, pending map[string]int) error {
	for _, p := range s.Phones {
		if until, ok := locked[p]; ok && until.After(now) {
			return errs.FailedPrecondition(ReasonPhoneLocked, "%s",
				fmt.Sprintf("the verifier phone %s is locked after too many failed checks until %s: submit again after that",
					pii.MaskPhone(p), until.UTC().Format(time.RFC3339)))
		}
	}
	if s.Max <= 0 {
		return nil
	}
	for _, p := range s.Phones {
		if pending[p] >= s.Max {
			return errs.FailedPrecondition(ReasonTooManyOpenChallenges, "%s",
				fmt.Sprintf("the verifier phone %s already has %d verifications pending at once, the most allowed: "+
					"submit again when one of them has finished", pii.MaskPhone(p), s.Max))
		}
	}
	return nil
}
