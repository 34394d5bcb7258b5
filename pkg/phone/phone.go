// Package phone normalises the many spellings of a mobile number (13812345678, +86 138 1234 5678,
// 86-138-1234-5678, 008613812345678) to E.164, with mainland China as the default region.
package phone

import (
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/icpverify/icpverify/pkg/errs"
)

// DefaultRegion is used for numbers written without a country code.
const DefaultRegion = "CN"

// ReasonInvalidPhone is the ErrorInfo reason of a number that cannot be a mobile number.
const ReasonInvalidPhone = "INVALID_PHONE"

// Normalize returns the E.164 form of a mobile number, or an InvalidArgument error naming field.
func Normalize(field, raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", errs.Invalid(field, ReasonInvalidPhone, "a mobile phone number is required")
	}
	// "86-138..." and "0086..." are common spellings of the country code without the plus.
	compact := strings.NewReplacer(" ", "", "-", "", "(", "", ")", "", ".", "").Replace(s)
	switch {
	case strings.HasPrefix(compact, "00"):
		compact = "+" + compact[2:]
	case strings.HasPrefix(compact, "86") && len(compact) == 13:
		compact = "+" + compact
	}
	num, err := phonenumbers.Parse(compact, DefaultRegion)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return "", errs.Invalid(field, ReasonInvalidPhone, "not a valid phone number")
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		return "", errs.Invalid(field, ReasonInvalidPhone, "not a mobile phone number: the code is sent by SMS")
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}
