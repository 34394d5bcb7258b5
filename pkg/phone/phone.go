// Package phone normalises the many spellings of a mobile number (13812345678, +86 138 1234 5678,
// 86-138-1234-5678, 008613812345678) to E.164, with mainland China as the default region.
package phone

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nyaruka/phonenumbers"

	"github.com/icpverify/icpverify/pkg/errs"
)

// DefaultRegion is used for numbers written without a country code.
const DefaultRegion = "CN"

// ReasonInvalidPhone is the ErrorInfo reason of a number that cannot be a mobile number.
const ReasonInvalidPhone = "INVALID_PHONE"

// MaxInputLength bounds the spelling of a number (after trimming): the longest E.164 number has 16
// characters, and separators or a 00 prefix do not triple that. A longer input is not parsed.
const MaxInputLength = 40

// Normalize returns the E.164 form of a mobile number of any country, or an InvalidArgument error
// naming field. Input from callers goes through Countries.Normalize, which also applies the list of
// allowed country codes.
func Normalize(field, raw string) (string, error) {
	e164, _, err := normalize(field, raw)
	return e164, err
}

// normalize is Normalize that also returns the number's country calling code.
func normalize(field, raw string) (string, int32, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", 0, errs.Invalid(field, ReasonInvalidPhone, "a mobile phone number is required")
	}
	if n, ok := cnMobileE164(s); ok && validMobile(n) {
		// Already E.164 for a CN mobile and valid by the same rule as below: Parse would give back s.
		return s, cnCountryCode, nil
	}
	if len(s) > MaxInputLength {
		return "", 0, errs.Invalid(field, ReasonInvalidPhone, "not a valid phone number")
	}
	return normalizeSlow(field, s)
}

// separators are dropped before parsing; a Replacer is safe for concurrent use.
var separators = strings.NewReplacer(" ", "", "-", "", "(", "", ")", "", ".", "")

// cnCountryCode is the calling code of mainland China.
const cnCountryCode int32 = 86

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

// validMobile reports whether GetNumberType would call +86 nationalNumber MOBILE or
// FIXED_LINE_OR_MOBILE (+86 maps to the single region CN, so that also implies IsValidNumber). It
// replays getNumberTypeHelper (phonenumbers v1.8.1) on precompiled CN patterns instead of calling it:
// the library also matches CN's ~1 KB fixed-line pattern, which cannot change the answer, and that
// regexp was most of this function's cost (5-8% of a service's CPU).
func validMobile(nationalNumber uint64) bool {
	t := cnTypes()
	nsn := strconv.FormatUint(nationalNumber, 10) // GetNationalSignificantNumber: no Italian leading zero here
	if !t.mobile.matches(nsn) || !t.general.matches(nsn) {
		return false
	}
	for _, d := range t.before {
		if d.matches(nsn) {
			return false // PREMIUM_RATE, TOLL_FREE, ...: returned before fixed line and mobile are looked at
		}
	}
	return true
}

// numberDesc is a PhoneNumberDesc compiled for the test isNumberMatchingDesc makes: the length must be
// one of PossibleLength (when any are listed) and the whole number must match the pattern.
type numberDesc struct {
	lengths []int32
	re      *regexp.Regexp
}

func compileDesc(d *phonenumbers.PhoneNumberDesc) numberDesc {
	// An absent desc (nil getters: pattern "", no lengths) matches only "", never a national number.
	return numberDesc{d.GetPossibleLength(), regexp.MustCompile("^(?:" + d.GetNationalNumberPattern() + ")$")}
}

func (d numberDesc) matches(nsn string) bool {
	if len(d.lengths) > 0 && !slices.Contains(d.lengths, int32(len(nsn))) {
		return false
	}
	return d.re.MatchString(nsn)
}

// cnTypes compiles, once, the CN descs getNumberTypeHelper consults to answer MOBILE or
// FIXED_LINE_OR_MOBILE. Its rule reduces to: general desc matches, none of the types it returns
// before fixed line matches, and then
//   - patterns differ: fixed line matches → FIXED_LINE_OR_MOBILE iff mobile matches; it does not →
//     MOBILE iff mobile matches. Either way "mobile matches", and fixed line is irrelevant;
//   - SameMobileAndFixedLinePattern: FIXED_LINE_OR_MOBILE iff fixed line matches (MOBILE is never
//     returned), so the fixed-line desc plays the mobile desc's role.
var cnTypes = sync.OnceValue(func() (t struct {
	general, mobile numberDesc
	before          []numberDesc
}) {
	// MetadataCollection returns the collection the library loaded at init (cached, not re-parsed);
	// the library has no exported per-region lookup. Like its region map, the last "CN" entry wins.
	coll, err := phonenumbers.MetadataCollection()
	var cn *phonenumbers.PhoneMetadata
	for _, m := range coll.GetMetadata() {
		if m.GetId() == DefaultRegion {
			cn = m
		}
	}
	if err != nil || cn == nil {
		panic(fmt.Sprintf("phone: no %s metadata in phonenumbers: %v", DefaultRegion, err))
	}
	t.general = compileDesc(cn.GetGeneralDesc())
	t.mobile = compileDesc(cn.GetMobile())
	if cn.GetSameMobileAndFixedLinePattern() {
		t.mobile = compileDesc(cn.GetFixedLine())
	}
	for _, d := range []*phonenumbers.PhoneNumberDesc{cn.GetPremiumRate(), cn.GetTollFree(), cn.GetSharedCost(),
		cn.GetVoip(), cn.GetPersonalNumber(), cn.GetPager(), cn.GetUan(), cn.GetVoicemail()} {
		if p := d.GetNationalNumberPattern(); p == "" || p == "NA" {
			continue // no numbers of this type in CN: the pattern cannot match digits
		}
		t.before = append(t.before, compileDesc(d))
	}
	return t
})

// normalizeSlow parses any spelling of a number; s is trimmed and not empty. It returns the E.164
// form and the country calling code.
func normalizeSlow(field, s string) (string, int32, error) {
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
		return "", 0, errs.Invalid(field, ReasonInvalidPhone, "not a valid phone number")
	}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
	default:
		return "", 0, errs.Invalid(field, ReasonInvalidPhone, "not a mobile phone number: the code is sent by SMS")
	}
	return phonenumbers.Format(num, phonenumbers.E164), num.GetCountryCode(), nil
}
