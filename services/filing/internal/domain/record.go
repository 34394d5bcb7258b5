package domain

import (
	"strings"

	"github.com/icpverify/icpverify/pkg/errs"
)

// Subject is the approved record of a subject: what the administration last approved. Orders other
// than FIRST_FILING are checked against it, and APPROVED orders update it.
type Subject struct {
	ID           string    `json:"subject_id"`
	Name         string    `json:"name,omitempty"`
	Type         int32     `json:"type,omitempty"`
	Principal    *Person   `json:"principal,omitempty"`
	Services     []Service `json:"services,omitempty"`
	Deregistered bool      `json:"deregistered,omitempty"`
	// Province is the code of the administration that approved the subject's first filing ("": a
	// record approved before orders named their province). Orders without a province take it.
	Province string `json:"province,omitempty"`
	// Holders are the tenants that hold the record (see HolderChangeOf), sorted. The engines keep them
	// beside the record, not in it.
	Holders []string `json:"-"`
}

// Service returns the record's service with key (Service.Key), if any.
func (s Subject) Service(key string) (Service, bool) {
	for _, w := range s.Services {
		if w.Key() == key {
			return w, true
		}
	}
	return Service{}, false
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
	key    string // the service's Key, "" for the principal
	person Person
	// changes is set for the data the order changes (a new principal of a subject_changed order, a
	// new or changed service): it is the data under review, so nothing in the record binds it.
	changes bool
}

func givenPersons(s Spec) []givenPerson {
	var out []givenPerson
	if s.Principal != nil {
		out = append(out, givenPerson{role: RolePrincipal, person: *s.Principal, changes: s.SubjectChanged})
	}
	for _, w := range s.Services {
		if w.Person != nil {
			out = append(out, givenPerson{role: w.Key(), key: w.Key(), person: *w.Person,
				changes: s.FilingType == AddWebsite || w.Changed})
		}
	}
	return out
}

// CheckAgainstRecord checks a normalized spec of any type but FIRST_FILING against the subject's
// approved record:
//   - ADD_WEBSITE names services that are not in the record yet; every other type names services of
//     the record (a service is its kind and key, Service.Key);
//   - every person the order names, except the data it changes, holds the record's ID document for
//     that role: the verifier is checked against the tail of that document, so it must not be the
//     submitter's choice;
//   - the phone-change rule of domain.md: except on CHANGE_FILING and ADD_WEBSITE, every person the
//     order names (verifying or not) has the record's phone for that role.
func (r Rules) CheckAgainstRecord(s Spec, rec Subject) error {
	for _, w := range s.Services {
		_, inRecord := rec.Service(w.Key())
		switch {
		case s.FilingType == AddWebsite && inRecord:
			return errs.FailedPrecondition(ReasonWebsiteAlreadyInRecord,
				"%s %s is already in the subject's approved record; change it with a CHANGE_FILING", w.Kind, serviceLabel(w))
		case s.FilingType != AddWebsite && !inRecord:
			return errs.FailedPrecondition(ReasonWebsiteNotInRecord,
				"%s %s is not in the subject's approved record", w.Kind, serviceLabel(w))
		}
	}
	for _, gp := range givenPersons(s) {
		var recorded *Person
		if gp.key == "" {
			recorded = rec.Principal
		} else if w, ok := rec.Service(gp.key); ok {
			recorded = w.Person
		}
		if recorded == nil {
			// Nothing recorded for this role: there is nothing to compare with.
			continue
		}
		// The identity card on a HK/Macau permit's back is part of the document: in a province that
		// checks its tail it is what the verifier is checked against.
		if !gp.changes && (recorded.IDType != gp.person.IDType || recorded.IDNumber != gp.person.IDNumber ||
			recorded.HKMacaoIDNumber != gp.person.HKMacaoIDNumber) {
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
		out := Subject{ID: newID, Name: s.SubjectName, Type: s.SubjectType, Principal: s.Principal, Province: s.Province}
		for _, w := range s.Services {
			w.Changed = false
			out.Services = append(out.Services, w)
		}
		return out
	case AddWebsite:
		rec = updateSubjectData(rec, s)
		for _, w := range s.Services {
			rec = upsertService(rec, w)
		}
	case AddAccess:
		// The services move to this provider as the record has them; subject data never changes here.
		for _, w := range s.Services {
			rec = upsertService(rec, w)
		}
	case ChangeFiling:
		rec = updateSubjectData(rec, s)
		for _, w := range s.Services {
			if w.Changed {
				rec = upsertService(rec, w)
			}
		}
	case DeregisterSubject:
		rec.Deregistered = true
	case DeregisterWebsite:
		for _, w := range s.Services {
			rec.Services = removeService(rec.Services, w.Key())
		}
	case ChangeAccess, CancelAccess:
		// The access provider is not part of the record this service keeps.
	}
	if rec.Province == "" {
		// A record approved before orders named their province learns it from the first that does.
		rec.Province = s.Province
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

func upsertService(rec Subject, w Service) Subject {
	w.Changed = false
	services := make([]Service, 0, len(rec.Services)+1)
	replaced := false
	for _, old := range rec.Services {
		if old.Key() == w.Key() {
			if w.Person == nil {
				w.Person = old.Person
			}
			old, replaced = w, true
		}
		services = append(services, old)
	}
	if !replaced {
		services = append(services, w)
	}
	rec.Services = services
	return rec
}

func removeService(ws []Service, key string) []Service {
	out := make([]Service, 0, len(ws))
	for _, w := range ws {
		if w.Key() != key {
			out = append(out, w)
		}
	}
	return out
}

// serviceLabel names a service in messages: what identifies it within its kind.
func serviceLabel(w Service) string {
	label, _ := strings.CutPrefix(w.Key(), w.Kind.String()+":")
	return label
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
