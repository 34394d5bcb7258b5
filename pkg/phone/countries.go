package phone

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/nyaruka/phonenumbers"

	"github.com/icpverify/icpverify/pkg/errs"
)

// ReasonCountryNotAllowed is the ErrorInfo reason of a valid mobile number whose country calling
// code is not on the list a service accepts (security review M4: SMS to high-cost foreign numbers).
const ReasonCountryNotAllowed = "PHONE_COUNTRY_NOT_ALLOWED"

// DefaultCountries is the default list of allowed country calling codes: mainland China only.
const DefaultCountries = "86"

// Countries is a list of allowed country calling codes (CONFIGURABLE: --phone-country-codes). The
// zero value allows mainland China (+86) only.
type Countries struct {
	codes []int32 // nil: {86}
}

// ParseCountries reads a comma-separated list of country calling codes, with or without "+", e.g.
// "86" or "86,852,853". Each must be a calling code the phone number metadata knows.
func ParseCountries(list string) (Countries, error) {
	var c Countries
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimPrefix(strings.TrimSpace(f), "+")
		if f == "" {
			continue
		}
		n, err := strconv.ParseInt(f, 10, 32)
		if err != nil || n <= 0 || phonenumbers.GetRegionCodeForCountryCode(int(n)) == phonenumbers.UNKNOWN_REGION {
			return Countries{}, fmt.Errorf("%q is not a country calling code", f)
		}
		if !slices.Contains(c.codes, int32(n)) {
			c.codes = append(c.codes, int32(n))
		}
	}
	if len(c.codes) == 0 {
		return Countries{}, fmt.Errorf("no country calling code in %q", list)
	}
	return c, nil
}

// Allows tells whether numbers with country calling code cc are accepted.
func (c Countries) Allows(cc int32) bool {
	if c.codes == nil {
		return cc == cnCountryCode
	}
	return slices.Contains(c.codes, cc)
}

// String lists the allowed codes as they are written in a number: "+86", "+86, +852".
func (c Countries) String() string {
	codes := c.codes
	if codes == nil {
		codes = []int32{cnCountryCode}
	}
	parts := make([]string, len(codes))
	for i, cc := range codes {
		parts[i] = "+" + strconv.Itoa(int(cc))
	}
	return strings.Join(parts, ", ")
}

// Normalize is the package's Normalize for numbers of the allowed countries only: a valid mobile
// number of any other country is an InvalidArgument with reason PHONE_COUNTRY_NOT_ALLOWED that names
// the allowed codes. The check costs a comparison: the calling code comes out of the parse (the
// E.164 fast path is +86 by construction).
func (c Countries) Normalize(field, raw string) (string, error) {
	e164, cc, err := normalize(field, raw)
	if err != nil {
		return "", err
	}
	if !c.Allows(cc) {
		return "", errs.Invalid(field, ReasonCountryNotAllowed,
			"only mobile numbers with country code %s are accepted; this one has +%d", c, cc)
	}
	return e164, nil
}
