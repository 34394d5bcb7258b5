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
	// MaxWebsites and MaxVerifiers bound an order (0: DefaultMaxWebsites, DefaultMaxVerifiers); the
	// first counts services of every kind.
	MaxWebsites, MaxVerifiers int
	// BackIDTailProvinces lists the provinces (GB/T 2260 codes) whose administration checks a HK/Macau
	// permit holder against the tail of the Hong Kong or Macau identity card on the permit's back
	// rather than the permit's own number (nil: Zhejiang only; empty: none).
	BackIDTailProvinces []string
	// DefaultProvince is the province of a FIRST_FILING that names none ("": it stays unnamed, and
	// its verifiers type their documents' own tails).
	DefaultProvince string
}

// RolePrincipal is the verifier role of the subject's principal responsible person.
const RolePrincipal = "principal"

// WebsiteRole is the verifier role of a website's responsible person (Service.Key of the website).
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

// serviceVerifies tells whether the person of service w must pass SMS verification for spec
// (domain.md's table, "website" read as "service").
func serviceVerifies(s Spec, w Service) bool {
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

// servicesRequired lists the types whose order must name at least one service.
func servicesRequired(t FilingType) bool {
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

// Normalize validates spec and returns it with trimmed NFC names, canonical domains (normalizeDomain)
// and service identifiers (normalizeService), the legacy websites folded into Services, the province
// as its code, E.164 phones and cleaned ID numbers. The error is an InvalidArgument naming the field,
// e.g. spec.websites[1].person.phone or spec.services[0].app_platforms[1].package_or_bundle_id. Every
// path that stores or submits an order passes here, so the limits (limits.go) hold on both engines.
func (r Rules) Normalize(s Spec) (Spec, error) {
	if s.FilingType == 0 {
		return s, errs.Invalid("spec.filing_type", ReasonMissingFilingType, "filing_type is required")
	}
	if !s.FilingType.Valid() {
		return s, errs.Invalid("spec.filing_type", ReasonInvalidFilingType, "unknown filing_type")
	}
	if limit, n := r.maxWebsites(), len(s.Websites)+len(s.Services); n > limit {
		field := "spec.services"
		if len(s.Services) == 0 {
			field = "spec.websites"
		}
		return s, errs.Invalid(field, ReasonTooManyWebsites, "an order lists at most %d services (websites, APPs, mini programmes, quick apps); this one lists %d",
			limit, n)
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
	if s.Province, err = normalizeProvince("spec.province", s.Province); err != nil {
		return s, err
	}
	if s.Province == "" && s.FilingType == FirstFiling {
		s.Province = r.DefaultProvince
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
	if len(s.Websites)+len(s.Services) == 0 && servicesRequired(s.FilingType) {
		return s, errs.Invalid("spec.services", ReasonMissingWebsites,
			"at least one service (website, APP, mini programme or quick app) is required for a %s order", s.FilingType)
	}
	paths := make([]string, 0, len(s.Websites)+len(s.Services))
	for i, w := range s.Websites {
		if w.Kind != 0 && w.Kind != KindWebsite {
			return s, errs.Invalid(fmt.Sprintf("spec.websites[%d].kind", i), ReasonInvalidServiceKind, "websites lists websites only: list the others in services")
		}
		paths = append(paths, fmt.Sprintf("spec.websites[%d]", i))
	}
	for i := range s.Services {
		paths = append(paths, fmt.Sprintf("spec.services[%d]", i))
	}
	all := foldWebsites(s.Websites, s.Services)
	services := make([]Service, len(all))
	seen := make(map[string]int, len(all))
	for i, sv := range all {
		path := paths[i]
		if sv, err = normalizeService(path, sv); err != nil {
			return s, err
		}
		if j, dup := seen[sv.Key()]; dup {
			if sv.Kind == KindWebsite {
				return s, errs.Invalid(path+".domain", ReasonDuplicateDomain, "the domain is already listed as %s", strings.TrimPrefix(paths[j], "spec."))
			}
			return s, errs.Invalid(path, ReasonDuplicateService, "the %s is already listed as %s", sv.Kind, strings.TrimPrefix(paths[j], "spec."))
		}
		seen[sv.Key()] = i
		if sv.Changed && s.FilingType != ChangeFiling {
			return s, errs.Invalid(path+".changed", ReasonUnexpectedWebsiteChanged, "changed is for CHANGE_FILING orders only")
		}
		if sv.Person == nil && serviceVerifies(s, sv) {
			return s, errs.Invalid(path+".person", ReasonMissingPerson, "the %s's responsible person is required for this order", sv.Kind)
		}
		if sv.Person != nil {
			p, err := r.normalizePerson(path+".person", *sv.Person)
			if err != nil {
				return s, err
			}
			sv.Person = &p
		}
		services[i] = sv
	}
	s.Websites, s.Services = nil, services
	if err := r.checkVerifierCount(s, paths); err != nil {
		return s, err
	}
	if err := r.CheckBackIDs(s, paths); err != nil {
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
	if strings.TrimSpace(p.HKMacaoIDNumber) == "" {
		p.HKMacaoIDNumber = ""
	} else {
		field := path + ".hk_macao_id_number"
		if p.IDType != iddoc.HKMacaoPermit {
			return p, errs.Invalid(field, iddoc.ReasonInvalidHKMacaoID, "hk_macao_id_number is for holders of a HK_MACAO_PERMIT only")
		}
		if len(p.HKMacaoIDNumber) > MaxIDNumberLength {
			return p, errs.Invalid(field, iddoc.ReasonInvalidHKMacaoID, "an ID document number has at most %d characters", MaxIDNumberLength)
		}
		if p.HKMacaoIDNumber, err = iddoc.CleanHKMacaoID(field, p.HKMacaoIDNumber); err != nil {
			return p, err
		}
	}
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

// ReasonMissingHKMacaoID refuses a verifying HK/Macau permit holder without the identity card on
// the permit's back in a province whose administration checks it.
const ReasonMissingHKMacaoID = "MISSING_HK_MACAO_ID_NUMBER"

// verifyingPerson is one role of a normalized spec that must verify.
type verifyingPerson struct {
	role   string
	path   string // the person's field, e.g. spec.services[0].person
	person Person
}

// servicePaths are the fields of a normalized spec's services when Normalize's are not at hand.
func servicePaths(s Spec) []string {
	paths := make([]string, len(s.Services))
	for i := range s.Services {
		paths[i] = fmt.Sprintf("spec.services[%d]", i)
	}
	return paths
}

func (r Rules) verifyingPersons(s Spec, paths []string) []verifyingPerson {
	if paths == nil {
		paths = servicePaths(s)
	}
	var out []verifyingPerson
	if r.principalVerifies(s) && s.Principal != nil {
		out = append(out, verifyingPerson{role: RolePrincipal, path: "spec.principal", person: *s.Principal})
	}
	for i, w := range s.Services {
		if serviceVerifies(s, w) && w.Person != nil {
			out = append(out, verifyingPerson{role: w.Key(), path: paths[i] + ".person", person: *w.Person})
		}
	}
	return out
}

// CheckBackIDs refuses a normalized spec of a province in BackIDTailProvinces whose verifying
// HK/Macau permit holder has no hk_macao_id_number: that administration checks its tail (paths: the
// services' fields as Normalize names them, nil: spec.services[i]). PlanSubmit checks again once an
// order without a province takes its record's.
func (r Rules) CheckBackIDs(s Spec, paths []string) error {
	if !r.backIDTail(s.Province) {
		return nil
	}
	for _, vp := range r.verifyingPersons(s, paths) {
		if vp.person.IDType == iddoc.HKMacaoPermit && vp.person.HKMacaoIDNumber == "" {
			return errs.Invalid(vp.path+".hk_macao_id_number", ReasonMissingHKMacaoID,
				"in %s a HK/Macau permit holder verifies with the Hong Kong or Macau identity card on the permit's back: "+
					"hk_macao_id_number is required", ProvinceName(s.Province))
		}
	}
	return nil
}

// idTail is the tail a person types in the order's province: a HK/Macau permit holder's identity
// card tail where the administration checks it (width-folded, the brackets kept: 567(8)), else the
// tail of the person's own document.
func (r Rules) idTail(p Person, province string) string {
	if p.IDType == iddoc.HKMacaoPermit && p.HKMacaoIDNumber != "" && r.backIDTail(province) {
		return iddoc.Tail(p.HKMacaoIDNumber)
	}
	return iddoc.Tail(p.IDNumber)
}

// Verifiers returns who must pass SMS verification for a normalized spec: one verifier per distinct
// E.164 phone, in order of first appearance (principal first), so a person named in several roles
// gets one code and verifies once. Empty means the order skips verification. The spec's province
// must be settled (a non-first order without one takes its record's first, see PlanSubmit).
func (r Rules) Verifiers(s Spec) []Verifier {
	var out []Verifier
	index := map[string]int{}
	for _, vp := range r.verifyingPersons(s, nil) {
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
		if tail := r.idTail(vp.person, s.Province); !slices.Contains(v.IDTails, tail) {
			v.IDTails = append(v.IDTails, tail)
		}
	}
	return out
}
