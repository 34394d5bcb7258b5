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
	ReasonSubjectNotFound                 = "SUBJECT_NOT_FOUND"
)

// phoneChangeAllowed lists the types that may carry a verifying person's new number (only the new
// number then receives a code); every other type must use the numbers of the approved record.
func phoneChangeAllowed(t FilingType) bool { return t == ChangeFiling || t == AddWebsite }

// CheckAgainstRecord applies the phone-change rule of domain.md to a normalized spec of any type but
// FIRST_FILING: each verifying person's phone must equal the approved record's phone for that role,
// except for CHANGE_FILING and ADD_WEBSITE. ADD_ACCESS and DEREGISTER_WEBSITE must name websites of the record.
func (r Rules) CheckAgainstRecord(s Spec, rec Subject) error {
	if s.FilingType == AddAccess || s.FilingType == DeregisterWebsite {
		for _, w := range s.Websites {
			if _, ok := rec.Website(w.Domain); !ok {
				return errs.FailedPrecondition(ReasonWebsiteNotInRecord,
					"website %s is not in the subject's approved record", w.Domain)
			}
		}
	}
	if phoneChangeAllowed(s.FilingType) {
		return nil
	}
	for _, vp := range r.verifyingPersons(s) {
		var recorded *Person
		if vp.domain == "" {
			recorded = rec.Principal
		} else if w, ok := rec.Website(vp.domain); ok {
			recorded = w.Person
		}
		if recorded == nil {
			// Nothing recorded for this role (a website added by an order that never listed its
			// person): there is no number to compare with, so nothing was changed.
			continue
		}
		if recorded.Phone != vp.person.Phone {
			return errs.FailedPrecondition(ReasonPhoneChangeRequiresChangeFiling,
				"the phone of %s differs from the approved record; complete a CHANGE_FILING (变更备案) with the new number first", vp.role)
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
	case AddWebsite, AddAccess:
		rec = updateSubjectData(rec, s)
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
