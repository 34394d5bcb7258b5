package domain

import (
	"fmt"
	"slices"
	"strings"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/phone"
)

// Rules holds the CONFIGURABLE parts of domain.md and the limits of an order; the zero value is the
// default.
type Rules struct {
	// AddWebsitePrincipal makes the principal verify every ADD_WEBSITE order, not only those that
	// change subject data (default false).
	AddWebsitePrincipal bool
	// PhoneCountries lists the country calling codes an order's phones may have (zero: +86 only).
	PhoneCountries phone.Countries
	// MaxWebsites and MaxVerifiers bound an order (0: DefaultMaxWebsites, DefaultMaxVerifiers).
	MaxWebsites, MaxVerifiers int
}

// RolePrincipal is the verifier role of the subject's principal responsible person.
const RolePrincipal = "principal"

// WebsiteRole is the verifier role of a website's responsible person.
func WebsiteRole(domain string) string { return "website:" + domain }

// principalVerifies tells whether the principal must pass SMS verification for spec.
func (r Rules) principalVerifies(s Spec) bool {
	switch s.FilingType {
	case FirstFiling, DeregisterSubject:
		return true
	case AddWebsite:
		return r.AddWebsitePrincipal || s.SubjectChanged
	case ChangeFiling:
		return s.SubjectChanged
	}
	return false
}

// websiteVerifies tells whether the person of website w must pass SMS verification for spec.
func websiteVerifies(s Spec, w Website) bool {
	switch s.FilingType {
	case FirstFiling, AddWebsite, AddAccess, DeregisterWebsite:
		return true
	case ChangeFiling:
		return w.Changed
	}
	return false
}

// subjectMayChange lists the types whose order may change subject data (subject_changed).
func subjectMayChange(t FilingType) bool { return t == ChangeFiling || t == AddWebsite }

// websitesRequired lists the types whose order must name at least one website.
func websitesRequired(t FilingType) bool {
	return t == FirstFiling || t == AddWebsite || t == AddAccess || t == DeregisterWebsite
}

// The reasons of a spec's shape that Normalize gives besides the limits (limits.go) and the shared
// checks of ID documents (iddoc) and phones (phone).
const (
	ReasonMissingFilingType        = "MISSING_FILING_TYPE"
	ReasonInvalidFilingType        = "INVALID_FILING_TYPE"
	ReasonMissingSubjectID         = "MISSING_SUBJECT_ID"
	ReasonUnexpectedSubjectID      = "UNEXPECTED_SUBJECT_ID"
	ReasonUnexpectedSubjectChanged = "UNEXPECTED_SUBJECT_CHANGED"
	ReasonMissingPrincipal         = "MISSING_PRINCIPAL"
	ReasonMissingWebsites          = "MISSING_WEBSITES"
	ReasonDuplicateDomain          = "DUPLICATE_DOMAIN"
	ReasonUnexpectedWebsiteChanged = "UNEXPECTED_WEBSITE_CHANGED"
	ReasonMissingPerson            = "MISSING_PERSON"
	ReasonMissingName              = "MISSING_NAME"
)

// Normalize validates spec and returns it with trimmed NFC names, canonical domains (normalizeDomain),
// E.164 phones and cleaned ID numbers. The error is an InvalidArgument naming the field, e.g.
// spec.websites[1].person.phone. Every path that stores or submits an order passes here, so the
// limits (limits.go) hold on both engines.
func (r Rules) Normalize(s Spec) (Spec, error) {
	if s.FilingType == 0 {
		return s, errs.Invalid("spec.filing_type", ReasonMissingFilingType, "filing_type is required")
	}
	if !s.FilingType.Valid() {
		return s, errs.Invalid("spec.filing_type", ReasonInvalidFilingType, "unknown filing_type")
	}
	if limit := r.maxWebsites(); len(s.Websites) > limit {
		return s, errs.Invalid("spec.websites", ReasonTooManyWebsites, "an order lists at most %d websites; this one lists %d",
			limit, len(s.Websites))
	}
	s.SubjectID = strings.TrimSpace(s.SubjectID)
	if len(s.SubjectID) > MaxSubjectIDLength {
		return s, errs.Invalid("spec.subject_id", ReasonInvalidSubjectID, "subject_id is longer than %d characters", MaxSubjectIDLength)
	}
	var err error
	if s.SubjectName, err = normalizeName("spec.subject_name", s.SubjectName, MaxSubjectNameLength); err != nil {
		return s, err
	}
	switch {
	case s.FilingType == FirstFiling && s.SubjectID != "":
		return s, errs.Invalid("spec.subject_id", ReasonUnexpectedSubjectID, "a first filing creates its subject: leave subject_id empty")
	case s.FilingType != FirstFiling && s.SubjectID == "":
		return s, errs.Invalid("spec.subject_id", ReasonMissingSubjectID, "subject_id is required for a %s order", s.FilingType)
	}
	if s.SubjectChanged && !subjectMayChange(s.FilingType) {
		// On any other type an approval would write subject data (the principal's phone among it)
		// that the phone-change rule never checked.
		return s, errs.Invalid("spec.subject_changed", ReasonUnexpectedSubjectChanged,
			"subject_changed is for CHANGE_FILING and ADD_WEBSITE orders only")
	}
	if s.Principal == nil && r.principalVerifies(s) {
		return s, errs.Invalid("spec.principal", ReasonMissingPrincipal, "the principal responsible person is required for this order")
	}
	if s.Principal != nil {
		p, err := r.normalizePerson("spec.principal", *s.Principal)
		if err != nil {
			return s, err
		}
		s.Principal = &p
	}
	if len(s.Websites) == 0 && websitesRequired(s.FilingType) {
		return s, errs.Invalid("spec.websites", ReasonMissingWebsites, "at least one website is required for a %s order", s.FilingType)
	}
	websites := make([]Website, len(s.Websites))
	seen := make(map[string]int, len(s.Websites))
	for i, w := range s.Websites {
		path := fmt.Sprintf("spec.websites[%d]", i)
		if w.Domain, err = normalizeDomain(path+".domain", w.Domain); err != nil {
			return s, err
		}
		if w.Name, err = normalizeName(path+".name", w.Name, MaxWebsiteNameLength); err != nil {
			return s, err
		}
		if j, dup := seen[w.Domain]; dup {
			return s, errs.Invalid(path+".domain", ReasonDuplicateDomain, "the domain is already listed as websites[%d]", j)
		}
		seen[w.Domain] = i
		if w.Changed && s.FilingType != ChangeFiling {
			return s, errs.Invalid(path+".changed", ReasonUnexpectedWebsiteChanged, "changed is for CHANGE_FILING orders only")
		}
		if w.Person == nil && websiteVerifies(s, w) {
			return s, errs.Invalid(path+".person", ReasonMissingPerson, "the website's responsible person is required for this order")
		}
		if w.Person != nil {
			p, err := r.normalizePerson(path+".person", *w.Person)
			if err != nil {
				return s, err
			}
			w.Person = &p
		}
		websites[i] = w
	}
	s.Websites = websites
	if err := r.checkVerifierCount(s); err != nil {
		return s, err
	}
	return s, nil
}

func (r Rules) normalizePerson(path string, p Person) (Person, error) {
	var err error
	if p.Name, err = normalizeName(path+".name", p.Name, MaxPersonNameLength); err != nil {
		return p, err
	}
	if p.Name == "" {
		return p, errs.Invalid(path+".name", ReasonMissingName, "the person's name is required")
	}
	if p.IDType < iddoc.ResidentIDCard || p.IDType > iddoc.Other {
		return p, errs.Invalid(path+".id_type", iddoc.ReasonInvalidIDType, "a known ID document type is required")
	}
	if len(p.IDNumber) > MaxIDNumberLength {
		return p, errs.Invalid(path+".id_number", iddoc.ReasonInvalidIDNumber, "an ID document number has at most %d characters", MaxIDNumberLength)
	}
	if err := iddoc.Validate(path+".id_number", p.IDType, p.IDNumber); err != nil {
		return p, err
	}
	p.IDNumber = iddoc.Clean(p.IDNumber)
	e164, err := r.PhoneCountries.Normalize(path+".phone", p.Phone)
	if err != nil {
		return p, err
	}
	p.Phone = e164
	// The emergency number never receives a code, but it is a contact the authority may call or
	// text: it follows the same country rule.
	if strings.TrimSpace(p.EmergencyPhone) == "" {
		p.EmergencyPhone = ""
	} else if p.EmergencyPhone, err = r.PhoneCountries.Normalize(path+".emergency_phone", p.EmergencyPhone); err != nil {
		return p, err
	}
	return p, nil
}

// verifyingPerson is one role of a normalized spec that must verify.
type verifyingPerson struct {
	role   string
	domain string // "" for the principal
	person Person
}

func (r Rules) verifyingPersons(s Spec) []verifyingPerson {
	var out []verifyingPerson
	if r.principalVerifies(s) && s.Principal != nil {
		out = append(out, verifyingPerson{role: RolePrincipal, person: *s.Principal})
	}
	for _, w := range s.Websites {
		if websiteVerifies(s, w) && w.Person != nil {
			out = append(out, verifyingPerson{role: WebsiteRole(w.Domain), domain: w.Domain, person: *w.Person})
		}
	}
	return out
}

// Verifiers returns who must pass SMS verification for a normalized spec: one verifier per distinct
// E.164 phone, in order of first appearance (principal first), so a person named in several roles
// gets one code and verifies once. Empty means the order skips verification.
func (r Rules) Verifiers(s Spec) []Verifier {
	var out []Verifier
	index := map[string]int{}
	for _, vp := range r.verifyingPersons(s) {
		i, ok := index[vp.person.Phone]
		if !ok {
			i = len(out)
			index[vp.person.Phone] = i
			out = append(out, Verifier{Phone: vp.person.Phone})
		}
		v := &out[i]
		if !slices.Contains(v.Roles, vp.role) {
			v.Roles = append(v.Roles, vp.role)
		}
		if tail := iddoc.Tail(vp.person.IDNumber); !slices.Contains(v.IDTails, tail) {
			v.IDTails = append(v.IDTails, tail)
		}
	}
	return out
}
