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
	if n, ok := cnMobileE164(s); ok && validMobile(n) {
		// Already E.164 for a CN mobile and valid by the same rule as below: Parse would give back s.
		return s, nil
	}
	return normalizeSlow(field, s)
}

// separators are dropped before parsing; a Replacer is safe for concurrent use.
var separators = strings.NewReplacer(" ", "", "-", "", "(", "", ")", "", ".", "")

// cnCountryCode is the calling code of mainland China.
const cnCountryCode = 86

// cnMobileE164 reports whether s has the shape +861[3-9]ddddddddd and returns its national number.
func cnMobileE164(s string) (uint64, bool) {
	if len(s) != 14 || s[:4] != "+861" || s[4] < '3' || s[4] > '9' {
		return 0, false
	}
	var n uint64
	for i := 3; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// validMobile applies the slow path's checks (valid number, mobile type) to +86 nationalNumber. +86
// maps to the single region CN, so IsValidNumber is exactly GetNumberType != UNKNOWN, and the mobile
// types below imply it: one pass over the CN patterns instead of two.
func validMobile(nationalNumber uint64) bool {
	cc := int32(cnCountryCode)
	num := &phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: &nationalNumber}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		return true
	}
	return false
}

// normalizeSlow parses any spelling of a number; s is trimmed and not empty.
func normalizeSlow(field, s string) (string, error) {
	// "86-138..." and "0086..." are common spellings of the country code without the plus.
	compact := separators.Replace(s)
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
