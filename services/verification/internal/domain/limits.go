package domain

import (
	"errors"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/phone"
)

// The limits of verification's input, in one place (security review M5). filing bounds an order to
// at most 100 verifiers (its --max-verifiers-per-order ceiling) and 200 websites, so a session of
// filing's never comes near these; they bound what any caller of OpenSession can make a session cost.
const (
	MaxSessionVerifiers = 100  // verifiers of one OpenSession
	MaxVerifierRoles    = 256  // roles of one verifier: the principal and every website sharing its phone
	MaxRoleLength       = 1024 // bytes: "website:" and a domain of 253 ASCII characters, or its Unicode form (<= 4 bytes each)
	MaxVerifierTails    = 256  // ID tails of one verifier: one per person sharing its phone
	MaxVerifierIDLength = 16   // verifier ids are v1 ... v100
	MaxTenantLength     = 256  // an API key id or a JWT tenant claim
)

// The reasons of OpenSession and ResendVerifierCode input over the limits.
const (
	ReasonTooManyVerifiers  = "TOO_MANY_VERIFIERS"
	ReasonTooManyRoles      = "TOO_MANY_ROLES"
	ReasonInvalidRole       = "INVALID_ROLE"
	ReasonTooManyTails      = "TOO_MANY_ID_TAILS"
	ReasonInvalidVerifierID = "INVALID_VERIFIER_ID"
	ReasonInvalidTenant     = "INVALID_TENANT"
)

// The reasons of malformed OpenSession and ResendVerifierCode requests.
const (
	ReasonMissingDeadline        = "MISSING_DEADLINE"
	ReasonInvalidDeadline        = "INVALID_DEADLINE"
	ReasonInvalidLocale          = "INVALID_LOCALE"
	ReasonNoVerifiers            = "NO_VERIFIERS"
	ReasonDuplicateVerifierPhone = "DUPLICATE_VERIFIER_PHONE"
	ReasonMissingIDTail          = "MISSING_ID_TAIL"
	ReasonMissingVerifierID      = "MISSING_VERIFIER_ID"
)

// NormalizePhone normalizes the phone a verifier typed in Verify or ResendCode. A valid number of a
// country no order may carry (countries, the same list as filing's --phone-country-codes) is
// answered exactly as a malformed one: no challenge can exist for it, and a distinct answer would
// only tell the caller which numbers filing accepts, nothing about verifiers.
func NormalizePhone(countries phone.Countries, field, raw string) (string, error) {
	p, err := countries.Normalize(field, raw)
	var de *errs.Error
	if errors.As(err, &de) && de.Reason == phone.ReasonCountryNotAllowed {
		return "", errs.Invalid(field, phone.ReasonInvalidPhone, "not a valid phone number")
	}
	return p, err
}
