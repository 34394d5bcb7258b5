// Package iddoc validates identity document numbers and derives the 6-character tail a verifier
// types in. The tail is compared case-insensitively after trimming spaces.
package iddoc

import (
	"golang.org/x/text/width"

	"regexp"
	"strings"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// Type is the kind of document; the values mirror icp.filing.v1.IdDocumentType.
type Type int

// The document types.
const (
	ResidentIDCard Type = iota + 1
	Passport
	HKMacaoPermit
	TaiwanPermit
	ForeignPermanentResidentID
	Other
)

// ReasonInvalidIDNumber is the ErrorInfo reason of a malformed ID number.
const ReasonInvalidIDNumber = "INVALID_ID_NUMBER"

// ReasonInvalidTail is the reason of a typed ID tail that is not 6 characters of an ID number.
const ReasonInvalidTail = "INVALID_ID_TAIL"

// ReasonInvalidIDType is the reason of an ID document type outside Type.
const ReasonInvalidIDType = "INVALID_ID_TYPE"

var (
	passportRE = regexp.MustCompile(`^[A-Z0-9]{6,17}$`) // at least 6: the verifier types the last 6
	hkMacaoRE  = regexp.MustCompile(`^[HM][0-9]{8}([0-9]{2})?$`)
	taiwanRE   = regexp.MustCompile(`^[0-9]{8}([0-9]{2})?$`)
	foreignOld = regexp.MustCompile(`^[A-Z]{3}[0-9]{12}$`)
	otherRE    = regexp.MustCompile(`^[A-Z0-9\-]{6,30}$`)
	// The brackets: a Hong Kong identity card's check digit is written in them, "567(8)".
	tailRE = regexp.MustCompile(`^[A-Z0-9\-()]{6}$`)
)

// Clean folds full-width characters to their ASCII forms, removes spaces and upper-cases: the form
// every rule below works on.
func Clean(number string) string {
	// Width folding first: a number typed with a Chinese input method comes in full width
	// (１２３４５Ｘ, "567（8）", the ideographic space) and means the same characters.
	return strings.ToUpper(strings.Join(strings.Fields(width.Fold.String(number)), ""))
}

// Validate checks number against the rules of its document type; field names the request field.
func Validate(field string, t Type, number string) error {
	n := Clean(number)
	if n == "" {
		return errs.Invalid(field, ReasonInvalidIDNumber, "an ID document number is required")
	}
	var ok bool
	switch t {
	case ResidentIDCard:
		ok = validResidentID(n)
	case Passport:
		ok = passportRE.MatchString(n)
	case HKMacaoPermit:
		ok = hkMacaoRE.MatchString(n)
	case TaiwanPermit:
		ok = taiwanRE.MatchString(n)
	case ForeignPermanentResidentID:
		// The 2017 card has 15 characters; the 2023 card has 18 digits starting with 9 and a GB 11643 check digit.
		ok = foreignOld.MatchString(n) || (len(n) == 18 && n[0] == '9' && validResidentID(n))
	case Other:
		ok = otherRE.MatchString(n)
	default:
		return errs.Invalid(field, ReasonInvalidIDType, "unknown ID document type")
	}
	if !ok {
		return errs.Invalid(field, ReasonInvalidIDNumber, "not a valid number for this ID document type")
	}
	return nil
}

// Tail returns the last 6 characters of a (valid) document number.
func Tail(number string) string {
	n := Clean(number)
	if len(n) <= 6 {
		return n
	}
	return n[len(n)-6:]
}

// maxTailInput bounds what a verifier may type for the 6 characters, spaces included: a longer
// input is refused before it is cleaned.
const maxTailInput = 64

// NormalizeTail cleans what a verifier typed as the last 6 characters and checks its shape.
func NormalizeTail(field, typed string) (string, error) {
	t := ""
	if len(typed) <= maxTailInput {
		t = Clean(typed)
	}
	if !tailRE.MatchString(t) {
		return "", errs.Invalid(field, ReasonInvalidTail, "the last 6 characters of the ID document number are required")
	}
	return t, nil
}

var residentWeights = [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}

const residentCheck = "10X98765432"

// validResidentID checks length, digits, the birth date and the GB 11643 ISO 7064 MOD 11-2 check character.
func validResidentID(n string) bool {
	if len(n) != 18 {
		return false
	}
	sum := 0
	for i := 0; i < 17; i++ {
		c := n[i]
		if c < '0' || c > '9' {
			return false
		}
		sum += int(c-'0') * residentWeights[i]
	}
	if n[17] != residentCheck[sum%11] {
		return false
	}
	if n[0] == '9' { // foreign permanent resident numbers encode no birth date in this position
		return true
	}
	_, err := time.Parse("20060102", n[6:14])
	return err == nil
}

// ReasonInvalidHKMacaoID is the reason of a Hong Kong or Macau identity card number (the one on the
// back of a HK/Macau permit) that is not of either card's shape.
const ReasonInvalidHKMacaoID = "INVALID_HK_MACAO_ID_NUMBER"

var (
	// A Hong Kong identity card: one or two letters, six digits and the check character (a digit or
	// A) in brackets, A123456(3).
	hkIDRE = regexp.MustCompile(`^([A-Z]{1,2})([0-9]{6})\(?([0-9A])\)?$`)
	// A Macau resident identity card: 1, 5 or 7, six digits and the check digit in brackets, 1234567(8).
	macauIDRE = regexp.MustCompile(`^([157][0-9]{6})\(?([0-9])\)?$`)
)

// CleanHKMacaoID validates the Hong Kong or Macau identity card number printed on the back of a
// HK/Macau permit and returns it in the form the card prints it, the check character in brackets
// (A123456(3), 1234567(8)), whether typed with or without them, in full or half width. Its Tail is
// what a verifier types where the province asks for it: 456(3), as the portal's example 567（8）.
// A Hong Kong number's check character is verified (the weights 9 to 2, letters A=10 ... Z=35, a
// single letter counting as a space worth 36, modulo 11).
func CleanHKMacaoID(field, number string) (string, error) {
	n := Clean(number)
	if m := hkIDRE.FindStringSubmatch(n); m != nil {
		if hkCheck(m[1], m[2]) != m[3][0] {
			return "", errs.Invalid(field, ReasonInvalidHKMacaoID, "the Hong Kong identity card number's check character does not match")
		}
		return m[1] + m[2] + "(" + m[3] + ")", nil
	}
	if m := macauIDRE.FindStringSubmatch(n); m != nil {
		return m[1] + "(" + m[2] + ")", nil
	}
	return "", errs.Invalid(field, ReasonInvalidHKMacaoID,
		"not a Hong Kong (A123456(3)) or Macau (1234567(8)) identity card number")
}

func hkCheck(letters, digits string) byte {
	sum := 0
	if len(letters) == 1 {
		sum = 9*36 + 8*int(letters[0]-'A'+10)
	} else {
		sum = 9*int(letters[0]-'A'+10) + 8*int(letters[1]-'A'+10)
	}
	for i := 0; i < 6; i++ {
		sum += (7 - i) * int(digits[i]-'0')
	}
	switch c := (11 - sum%11) % 11; c {
	case 10:
		return 'A'
	default:
		return byte('0' + c)
	}
}
