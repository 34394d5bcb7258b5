package domain

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
	"golang.org/x/text/unicode/norm"

	"github.com/icpverify/icpverify/pkg/errs"
)

// The limits of filing's input, in one place (security review M4, M5, L8). The counts are
// CONFIGURABLE (Rules.MaxWebsites, Rules.MaxVerifiers); the lengths are fixed: they bound what an
// order costs to store, render and list (see app.maxPageBytes for the page arithmetic).
const (
	// DefaultMaxWebsites and DefaultMaxVerifiers bound an order: every website may bring a
	// verifier, and every verifier is an SMS (SMS pumping, M4).
	DefaultMaxWebsites  = 50
	DefaultMaxVerifiers = 20
	// CeilingMaxWebsites and CeilingMaxVerifiers bound the settings. verification opens sessions of
	// at most 100 verifiers. The biggest order of 50 websites is ~83 KB on the wire
	// (server.TestLimitsThroughGRPC), so the public listener's 256 KiB receive limit holds ~150
	// websites of the longest possible content, and 200 of any realistic length.
	CeilingMaxWebsites  = 200
	CeilingMaxVerifiers = 100

	// Lengths in characters (runes) of the free text of an order.
	MaxSubjectNameLength = 128  // 主体名称: the longest company names are well under 100 characters
	MaxPersonNameLength  = 100  // names as on the ID document, passports included
	MaxWebsiteNameLength = 100  // 网站名称
	MaxReasonLength      = 500  // CancelOrder reason, kept in the history
	MaxCommentLength     = 2000 // RecordReviewOutcome comment, kept in the history

	// Lengths in bytes.
	MaxSubjectIDLength = 64  // filing issues subject ids of 36 characters ("sub_" and 32 hex digits)
	MaxIDNumberLength  = 64  // an ID number as typed, spaces included; every valid cleaned form has at most 30
	MaxDomainLength    = 253 // a domain name in its ASCII (punycode) form, as in DNS
	MaxLabelLength     = 63  // one label of it
	maxDomainInput     = 4 * MaxDomainLength
)

// The reasons of input over a limit or with characters that do not belong.
const (
	ReasonTooManyWebsites   = "TOO_MANY_WEBSITES"
	ReasonTooManyVerifiers  = "TOO_MANY_VERIFIERS"
	ReasonTextTooLong       = "TEXT_TOO_LONG"
	ReasonInvalidCharacters = "INVALID_CHARACTERS"
	ReasonMissingDomain     = "MISSING_DOMAIN"
	ReasonInvalidDomain     = "INVALID_DOMAIN"
	ReasonInvalidSubjectID  = "INVALID_SUBJECT_ID"
)

// CheckText bounds free text given in field to limit characters.
func CheckText(field, s string, limit int) error {
	if len(s) > limit && utf8.RuneCountInString(s) > limit { // len first: most text is short ASCII
		return errs.Invalid(field, ReasonTextTooLong, "%s is longer than %d characters", field, limit)
	}
	return nil
}

// normalizeName trims a name (of a person, a subject, a website), puts it in Unicode NFC (one
// spelling of each accented or composed character, so equal names compare equal) and checks it:
// valid UTF-8, at most limit characters, no control or format characters (line breaks, NUL, bidi
// overrides, zero-width characters), which would be echoed to portal and administration UIs.
func normalizeName(field, s string, limit int) (string, error) {
	s = strings.TrimSpace(s)
	if !utf8.ValidString(s) {
		return s, errs.Invalid(field, ReasonInvalidCharacters, "%s is not valid UTF-8", field)
	}
	if len(s) > 4*limit*4 { // 4 bytes a rune, and room for decomposed characters: surely too long, not normalized
		return s, CheckText(field, s, limit)
	}
	s = norm.NFC.String(s)
	for _, r := range s {
		if unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp) {
			return s, errs.Invalid(field, ReasonInvalidCharacters, "%s contains a control or format character (%U)", field, r)
		}
	}
	return s, CheckText(field, s, limit) // counted composed: "é" is one character however it was typed
}

// domainProfile is UTS #46 lookup processing (mapping: upper to lower case, full-width to
// half-width, 。 to .) with the label rules of IDNA2008 (RFC 5891 5.4: hyphens, joiners, bidi), the
// STD3 ASCII rules (letters, digits, hyphens) and the DNS lengths.
var domainProfile = idna.New(idna.MapForLookup(), idna.BidiRule(), idna.VerifyDNSLength(true), idna.Transitional(false))

// normalizeDomain returns the canonical form of a website's domain: lower case, Unicode labels as
// Unicode (例子.中国, also when given in punycode, so both spellings are one domain), at most 253
// characters in punycode with labels of 1 to 63, only letters, digits and hyphens, at least two
// labels, and a top-level label that is not all digits (an IP address is not a website's domain).
func normalizeDomain(field, raw string) (string, error) {
	d := strings.TrimSpace(raw)
	if d == "" {
		return "", errs.Invalid(field, ReasonMissingDomain, "the website's domain is required")
	}
	if len(d) > maxDomainInput {
		return "", errs.Invalid(field, ReasonInvalidDomain, "a domain name has at most %d characters", MaxDomainLength)
	}
	for _, dot := range []string{".", "。", "．", "｡"} { // one root dot (DNS's absolute form) is allowed
		if t, ok := strings.CutSuffix(d, dot); ok {
			d = t
			break
		}
	}
	invalid := func(why string, args ...any) error {
		return errs.Invalid(field, ReasonInvalidDomain, "not a valid domain name: "+why, args...)
	}
	ascii, err := domainProfile.ToASCII(d)
	if err != nil {
		// The library's message quotes the input; the caller has it already.
		return "", invalid("use letters, digits and hyphens (or the Unicode letters of an internationalized domain), " +
			"labels of 1 to 63 characters separated by dots, no hyphen at either end of a label")
	}
	if len(ascii) > MaxDomainLength {
		return "", invalid("longer than %d characters in its ASCII form", MaxDomainLength)
	}
	labels := strings.Split(ascii, ".")
	if len(labels) < 2 {
		return "", invalid("a website's domain has at least two labels, e.g. example.cn")
	}
	for _, l := range labels {
		// ToASCII checked these already; the check is cheap and keeps this function's promise alone.
		if l == "" || len(l) > MaxLabelLength || strings.Trim(l, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return "", invalid("labels have 1 to %d letters, digits or hyphens", MaxLabelLength)
		}
	}
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return "", invalid("the top-level label is not a number: an IP address is not a domain name")
	}
	u, err := domainProfile.ToUnicode(ascii)
	if err != nil {
		return "", invalid("its punycode labels do not decode") // ToASCII verified them: not expected
	}
	return u, nil
}

// maxWebsites and maxVerifiers apply the defaults of the zero Rules.
func (r Rules) maxWebsites() int  { return orDefault(r.MaxWebsites, DefaultMaxWebsites) }
func (r Rules) maxVerifiers() int { return orDefault(r.MaxVerifiers, DefaultMaxVerifiers) }

func orDefault(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}

// Validate checks limits set explicitly, as the flags of the filing service set them: from 1 to
// the ceiling (only the zero Rules means the defaults).
func (r Rules) Validate() error {
	if r.MaxWebsites < 1 || r.MaxWebsites > CeilingMaxWebsites {
		return fmt.Errorf("--max-websites-per-order %d: must be between 1 and %d", r.MaxWebsites, CeilingMaxWebsites)
	}
	if r.MaxVerifiers < 1 || r.MaxVerifiers > CeilingMaxVerifiers {
		return fmt.Errorf("--max-verifiers-per-order %d: must be between 1 and %d", r.MaxVerifiers, CeilingMaxVerifiers)
	}
	return nil
}

// checkVerifierCount refuses a normalized spec whose distinct verifying phones exceed the limit,
// naming the phone of the first verifier too many (paths: the services' fields as Normalize names them).
func (r Rules) checkVerifierCount(s Spec, paths []string) error {
	limit := r.maxVerifiers()
	phones := make(map[string]bool, limit+1)
	for _, vp := range r.verifyingPersons(s, paths) {
		if phones[vp.person.Phone] {
			continue
		}
		if phones[vp.person.Phone] = true; len(phones) > limit {
			return errs.Invalid(vp.path+".phone", ReasonTooManyVerifiers,
				"an order has at most %d verifiers (distinct phones that receive a code); this one is verifier %d", limit, len(phones))
		}
	}
	return nil
}
