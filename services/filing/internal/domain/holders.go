package domain

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// Approved records belong to the authority; a tenant (接入商) files against a record only as one of
// its holders (security review H2, M2): the tenants whose access to the subject the administration
// approved. Every other tenant learns nothing from the record but what the issue allows: that a
// subject id is live (ADD_ACCESS must name a record held elsewhere) and, budgeted, that its order
// does not match.

// The reasons of record authorization.
const (
	// ReasonRecordMismatch is the one answer a tenant gets when its ADD_ACCESS order does not match
	// a record it does not hold: no field, no role, no domain.
	ReasonRecordMismatch = "RECORD_MISMATCH"
	// ReasonRecordMismatchBudget refuses comparing with a record the tenant does not hold once its
	// record-mismatch budget is spent.
	ReasonRecordMismatchBudget = "RECORD_MISMATCH_BUDGET"
)

// RecordMismatch is the generic answer to every mismatch of an order with a record its tenant does
// not hold.
func RecordMismatch() error {
	return errs.FailedPrecondition(ReasonRecordMismatch, "the order does not match the subject's approved record")
}

// NeedsHolder tells the filing types a tenant files only for records it holds: every type but
// FIRST_FILING (no record yet) and ADD_ACCESS (it moves websites of a record held elsewhere to the
// tenant). Naming another tenant's record with one of them is answered as an unknown subject.
func NeedsHolder(t FilingType) bool { return t != FirstFiling && t != AddAccess }

// Holds tells whether the actor holds rec: its tenant is one of rec's holders, or it is cross-tenant
// (the authority's portal holds every record).
func (a Actor) Holds(rec Subject) bool {
	return a.CrossTenant || (a.Tenant != "" && slices.Contains(rec.Holders, a.Tenant))
}

// ForeignRecord is what a check reports when an ADD_ACCESS order is to be compared with a record
// its tenant does not hold and no budget was taken for it (Access.Granted): the caller takes one of
// the tenant's record-mismatch budget and asks again. It never reaches a portal.
type ForeignRecord struct{ SubjectID string }

func (f *ForeignRecord) Error() string {
	return fmt.Sprintf("subject %s: a record the tenant does not hold; take its record-mismatch budget first", f.SubjectID)
}

// AsForeign returns the ForeignRecord err is, if any.
func AsForeign(err error) (*ForeignRecord, bool) {
	var f *ForeignRecord
	ok := errors.As(err, &f)
	return f, ok
}

// Access is who checks an order against a subject's record.
type Access struct {
	Actor Actor
	// Granted: the actor may compare an ADD_ACCESS order with a record it does not hold (one of its
	// tenant's record-mismatch budget was taken for this comparison, or there is no budget).
	Granted bool
}

// CheckSubject refuses a spec (of CreateOrder, UpdateOrder) that names a subject without a live
// approved record or, for a type that needs a holder, one the actor does not hold: both answered
// UnknownSubject, so a stranger's subject id is answered as an unknown one. An ADD_ACCESS against a
// record held elsewhere is refused with ForeignRecord until access.Granted (the budget must not be
// spent). The request names the subject, so it is NotFound (SubmitOrder checks again, PlanSubmit).
func CheckSubject(spec Spec, access Access, record RecordLookup) error {
	if spec.FilingType == FirstFiling {
		return nil
	}
	_, err := liveRecord(spec, access, record, UnknownSubject)
	return err
}

// liveRecord reads the record spec names as the access sees it: notFound() when there is none or it
// is another tenant's and the type needs a holder; ForeignRecord for an ADD_ACCESS against a record
// held elsewhere without access.Granted.
func liveRecord(spec Spec, access Access, record RecordLookup, notFound func() error) (Subject, error) {
	rec, found, err := record(spec.SubjectID)
	if err != nil {
		return Subject{}, err
	}
	if !found || (NeedsHolder(spec.FilingType) && !access.Actor.Holds(rec)) {
		return Subject{}, notFound()
	}
	if !access.Actor.Holds(rec) && !access.Granted {
		return Subject{}, &ForeignRecord{SubjectID: spec.SubjectID}
	}
	return rec, nil
}

// orderSubjectGone is SubmitOrder's answer for a subject without a live record the order's tenant
// may file against: the request names only the order, so it is the order's state.
func orderSubjectGone() error {
	return errs.FailedPrecondition(ReasonSubjectNotFound, "the order's subject has no live approved record")
}

// HolderChange is what an approval does to the holders of a subject's record.
type HolderChange struct {
	SubjectID, Tenant string
	Holds             bool // true: Tenant becomes a holder; false: it is one no longer
}

// HolderChangeOf is how approving o (after Approve named its subject) changes the holders:
//   - FIRST_FILING: the filing tenant holds the record it created;
//   - ADD_ACCESS: the websites move to the filing tenant, which becomes a holder too (the provider
//     they come from keeps its access until it files a CANCEL_ACCESS);
//   - CANCEL_ACCESS: the filing tenant gives its access up;
//   - CHANGE_ACCESS (变更接入) changes how the tenant serves the websites (addresses, access method), not
//     which tenant serves them, and only a holder files it: the holders stay as they are. So does every
//     other type, filed by a holder about the record's content.
func HolderChangeOf(o Order) (HolderChange, bool) {
	c := HolderChange{SubjectID: o.Spec.SubjectID, Tenant: o.Tenant}
	switch o.Spec.FilingType {
	case FirstFiling, AddAccess:
		c.Holds = true
	case CancelAccess:
		c.Holds = false
	default:
		return HolderChange{}, false
	}
	return c, c.SubjectID != "" && c.Tenant != ""
}

// The defaults of MismatchBudget (security review M2: UpdateOrder -> SubmitOrder could repeat
// without limit, each answer telling one more field of another company's record).
const (
	DefaultRecordMismatchBudget = 20
	DefaultRecordMismatchWindow = 24 * time.Hour
)

// MismatchBudget bounds how often one tenant compares orders with records it does not hold and
// finds a mismatch: at most Max in any Window.
type MismatchBudget struct {
	Max    int // <= 0: no budget
	Window time.Duration
}

// On tells whether the budget applies.
func (b MismatchBudget) On() bool { return b.Max > 0 && b.Window > 0 }

// Since is the start of the window ending at now.
func (b MismatchBudget) Since(now time.Time) time.Time { return now.Add(-b.Window) }

// Check refuses one more comparison at now when the tenant's mismatches within the window (at, their
// times after Since(now), each a reserved or failed comparison) reach Max: ResourceExhausted with
// the time a mismatch leaves the window.
func (b MismatchBudget) Check(at []time.Time, now time.Time) error {
	if !b.On() || len(at) < b.Max {
		return nil
	}
	at = slices.Clone(at)
	slices.SortFunc(at, time.Time.Compare)
	free := at[len(at)-b.Max].Add(b.Window)
	return errs.Exhausted(ReasonRecordMismatchBudget, free.Sub(now),
		"too many orders of this tenant did not match approved records it does not hold: compare again from %s",
		free.UTC().Format(time.RFC3339))
}
