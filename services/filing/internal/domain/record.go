package domain

import (
	"github.com/icpverify/icpverify/pkg/errs"
)

// Subject is the approved record of a subject: what the administration last approved. Orders other
// than FIRST_FILING are checked against it, and APPROVED orders update it.
type Subject struct {
	ID           string    `json:"subject_id"`
	Name         string    `json:"name,omitempty"`
	Type         int32     `json:"type,omitempty"`
	Principal    *Person   `json:"principal,omitempty"`
	Websites     []Website `json:"websites,omitempty"`
	Deregistered bool      `json:"deregistered,omitempty"`
	// Holders are the tenants that hold the record (see HolderChangeOf), sorted. The engines keep them
	// beside the record, not in it.
	Holders []string `json:"-"`
}

// Website returns the record's website with domain, if any.
func (s Subject) Website(domain string) (Website, bool) {
	for _, w := range s.Websites {
		if w.Domain == domain {
			return w, true
		}
	}
	return Website{}, false
}

// Reasons of the phone-change rule.
const (
	ReasonPhoneChangeRequiresChangeFiling = "PHONE_CHANGE_REQUIRES_CHANGE_FILING"
	ReasonWebsiteNotInRecord              = "WEBSITE_NOT_IN_RECORD"
	ReasonWebsiteAlreadyInRecord          = "WEBSITE_ALREADY_IN_RECORD"
	ReasonIDMismatchWithRecord            = "ID_MISMATCH_WITH_RECORD"
	ReasonSubjectNotFound                 = "SUBJECT_NOT_FOUND"
)

// phoneChangeAllowed lists the types that may carry a person's new number (only the new number then
// receives a code); every other type must use the numbers of the approved record.
func phoneChangeAllowed(t FilingType) bool { return t == ChangeFiling || t == AddWebsite }

// givenPerson is one person an order names, with the role it holds in the record.
type givenPerson struct {
	role   string
	domain string // "" for the principal
	person Person
	// changes is set for the data the order changes (a new principal of a subject_changed order, a
	// new or changed website): it is the data under review, so nothing in the record binds it.
	changes bool
}

func givenPersons(s Spec) []givenPerson {
	var out []givenPerson
	if s.Principal != nil {
		out = append(out, givenPerson{role: RolePrincipal, person: *s.Principal, changes: s.SubjectChanged})
	}
	for _, w := range s.Websites {
		if w.Person != nil {
			out = append(out, givenPerson{role: WebsiteRole(w.Domain), domain: w.Domain, person: *w.Person,
				changes: s.FilingType == AddWebsite || w.Changed})
		}
	}
	return out
}

// CheckAgainstRecord checks a normalized spec of any type but FIRST_FILING against the subject's
// approved record:
//   - ADD_WEBSITE names websites that are not in the record yet; every other type names websites of the record;
//   - every person the order names, except the data it changes, holds the record's ID document for
//     that role: the verifier is checked against the tail of that document, so it must not be the
//     submitter's choice;
//   - the phone-change rule of domain.md: except on CHANGE_FILING and ADD_WEBSITE, every person the
//     order names (verifying or not) has the record's phone for that role.
func (r Rules) CheckAgainstRecord(s Spec, rec Subject) error {
	for _, w := range s.Websites {
		_, inRecord := rec.Website(w.Domain)
		switch {
		case s.FilingType == AddWebsite && inRecord:
			return errs.FailedPrecondition(ReasonWebsiteAlreadyInRecord,
				"website %s is already in the subject's approved record; change it with a CHANGE_FILING", w.Domain)
		case s.FilingType != AddWebsite && !inRecord:
			return errs.FailedPrecondition(ReasonWebsiteNotInRecord,
				"website %s is not in the subject's approved record", w.Domain)
		}
	}
	for _, gp := range givenPersons(s) {
		var recorded *Person
		if gp.domain == "" {
			recorded = rec.Principal
		} else if w, ok := rec.Website(gp.domain); ok {
			recorded = w.Person
		}
		if recorded == nil {
			// Nothing recorded for this role: there is nothing to compare with.
			continue
		}
		if !gp.changes && (recorded.IDType != gp.person.IDType || recorded.IDNumber != gp.person.IDNumber) {
			return errs.FailedPrecondition(ReasonIDMismatchWithRecord,
				"the ID document of %s differs from the approved record; a new person is filed with a CHANGE_FILING (变更备案)", gp.role)
		}
		if !phoneChangeAllowed(s.FilingType) && recorded.Phone != gp.person.Phone {
			return errs.FailedPrecondition(ReasonPhoneChangeRequiresChangeFiling,
				"the phone of %s differs from the approved record; complete a CHANGE_FILING (变更备案) with the new number first", gp.role)
		}
	}
	return nil
}

// ApplyApproval returns the approved record after the administration approved an order with spec.
// rec is the current record (ignored for FIRST_FILING, which creates the subject with newID).
func ApplyApproval(s Spec, rec Subject, newID string) Subject {
	switch s.FilingType {
	case FirstFiling:
		out := Subject{ID: newID, Name: s.SubjectName, Type: s.SubjectType, Principal: s.Principal}
		for _, w := range s.Websites {
			w.Changed = false
			out.Websites = append(out.Websites, w)
		}
		return out
	case AddWebsite:
		rec = updateSubjectData(rec, s)
		for _, w := range s.Websites {
			rec = upsertWebsite(rec, w)
		}
	case AddAccess:
		// The websites move to this provider as the record has them; subject data never changes here.
		for _, w := range s.Websites {
			rec = upsertWebsite(rec, w)
		}
	case ChangeFiling:
		rec = updateSubjectData(rec, s)
		for _, w := range s.Websites {
			if w.Changed {
				rec = upsertWebsite(rec, w)
			}
		}
	case DeregisterSubject:
		rec.Deregistered = true
	case DeregisterWebsite:
		for _, w := range s.Websites {
			rec.Websites = removeWebsite(rec.Websites, w.Domain)
		}
	case ChangeAccess, CancelAccess:
		// The access provider is not part of the record this service keeps.
	}
	return rec
}

func updateSubjectData(rec Subject, s Spec) Subject {
	if !s.SubjectChanged {
		return rec
	}
	if s.SubjectName != "" {
		rec.Name = s.SubjectName
	}
	if s.SubjectType != 0 {
		rec.Type = s.SubjectType
	}
	if s.Principal != nil {
		rec.Principal = s.Principal
	}
	return rec
}

func upsertWebsite(rec Subject, w Website) Subject {
	w.Changed = false
	websites := make([]Website, 0, len(rec.Websites)+1)
	replaced := false
	for _, old := range rec.Websites {
		if old.Domain == w.Domain {
			if w.Person == nil {
				w.Person = old.Person
			}
			old, replaced = w, true
		}
		websites = append(websites, old)
	}
	if !replaced {
		websites = append(websites, w)
	}
	rec.Websites = websites
	return rec
}

func removeWebsite(ws []Website, domain string) []Website {
	out := make([]Website, 0, len(ws))
	for _, w := range ws {
		if w.Domain != domain {
			out = append(out, w)
		}
	}
	return out
}

// Approve decides what an approval of order o does to its subject's approved record: a FIRST_FILING
// creates one (and o names it from now on, so the portal can file later orders against it); every
// other type updates the live record, read with record. It returns the record to write.
func Approve(o *Order, record RecordLookup) (Subject, error) {
	if o.Spec.FilingType == FirstFiling {
		rec := ApplyApproval(o.Spec, Subject{}, NewID("sub_"))
		o.Spec.SubjectID = rec.ID
		return rec, nil
	}
	rec, found, err := record(o.Spec.SubjectID)
	if err != nil {
		return Subject{}, err
	}
	if !found {
		// Deregistered while the order was under review.
		return Subject{}, errs.FailedPrecondition(ReasonSubjectNotFound, "the order's subject has no live approved record")
	}
	return ApplyApproval(o.Spec, rec, ""), nil
}
