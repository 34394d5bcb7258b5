package domain

import (
	"fmt"
	"slices"

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

// CheckSlots decides on the counts of other orders awaiting verification per phone, which the engine
// read under a lock per phone (taken in Phones' order, so submissions never deadlock).
func (s PhoneSlots) CheckSlots(pending map[string]int) error {
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
