package domain

import (
	"errors"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

func TestRecordAccess(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	rec := Subject{ID: "sub_1", Principal: mustPerson(t, person("张三", idA, "13812345678")), Holders: []string{"a"},
		Services: []Service{{Kind: KindWebsite, Domain: "a.cn", Person: mustPerson(t, person("李四", idB, "13912345678"))}}}
	records := func(id string) (Subject, bool, error) { return rec, id == rec.ID, nil }
	holder, stranger, authority := Actor{Tenant: "a"}, Actor{Tenant: "b"}, Actor{Tenant: "x", CrossTenant: true}
	draft := func(s Spec) Order { return Order{ID: "ord_1", State: StateDraft, Spec: mustNormalize(t, Rules{}, s)} }
	plan := func(o Order, a Access) error { _, err := Rules{}.PlanSubmit(o, now, time.Hour, a, records); return err }

	change := Spec{FilingType: ChangeAccess, SubjectID: "sub_1"}
	unknown := Spec{FilingType: ChangeAccess, SubjectID: "sub_none"}
	// Another tenant's record is an unknown subject, at create and at submit, to the letter.
	theirs, none := CheckSubject(change, Access{Actor: stranger, Granted: true}, records), CheckSubject(unknown, Access{Actor: stranger}, records)
	if errs.Reason(theirs) != ReasonSubjectNotFound || theirs.Error() != none.Error() {
		t.Fatalf("stranger's CHANGE_ACCESS at create: %v, want the unknown subject's %v", theirs, none)
	}
	theirs, none = plan(draft(change), Access{Actor: stranger, Granted: true}), plan(draft(unknown), Access{Actor: stranger})
	if errs.Reason(theirs) != ReasonSubjectNotFound || theirs.Error() != none.Error() {
		t.Fatalf("stranger's CHANGE_ACCESS at submit: %v, want the unknown subject's %v", theirs, none)
	}
	for _, a := range []Actor{holder, authority} {
		if err := CheckSubject(change, Access{Actor: a}, records); err != nil {
			t.Fatalf("%+v holds the record: %v", a, err)
		}
	}

	// ADD_ACCESS with the wrong ID number: a stranger takes a budget first, then gets only the generic
	// answer; the holder and the authority get the detail.
	wrongID := draft(Spec{FilingType: AddAccess, SubjectID: "sub_1",
		Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: person("李四", idA, "13912345678")}}})
	if f, ok := AsForeign(plan(wrongID, Access{Actor: stranger})); !ok || f.SubjectID != "sub_1" {
		t.Fatalf("stranger's ADD_ACCESS without a budget: want ForeignRecord")
	}
	if _, ok := AsForeign(CheckSubject(wrongID.Spec, Access{Actor: stranger}, records)); !ok {
		t.Fatal("stranger's ADD_ACCESS create without a budget: want ForeignRecord")
	}
	generic := plan(wrongID, Access{Actor: stranger, Granted: true})
	var de *errs.Error
	if !errors.As(generic, &de) || de.Kind != errs.KindFailedPrecondition || de.Reason != ReasonRecordMismatch || de.Field != "" ||
		de.Message != "the order does not match the subject's approved record" {
		t.Fatalf("stranger's mismatch: %#v", generic)
	}
	notInRecord := draft(Spec{FilingType: AddAccess, SubjectID: "sub_1",
		Websites: []Website{{Kind: KindWebsite, Domain: "z.cn", Person: person("李四", idB, "13912345678")}}})
	if other := plan(notInRecord, Access{Actor: stranger, Granted: true}); other.Error() != generic.Error() {
		t.Fatalf("two different mismatches told apart: %v vs %v", other, generic)
	}
	for _, a := range []Actor{holder, authority} {
		if err := plan(wrongID, Access{Actor: a}); errs.Reason(err) != ReasonIDMismatchWithRecord {
			t.Fatalf("%+v: %v, want %s", a, err, ReasonIDMismatchWithRecord)
		}
	}
	right := draft(Spec{FilingType: AddAccess, SubjectID: "sub_1",
		Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: person("李四", idB, "13912345678")}}})
	if err := plan(right, Access{Actor: stranger, Granted: true}); err != nil {
		t.Fatalf("stranger's matching ADD_ACCESS: %v", err)
	}
}

func TestHolderChangeOf(t *testing.T) {
	o := func(ft FilingType) Order { return Order{Tenant: "b", Spec: Spec{FilingType: ft, SubjectID: "sub_1"}} }
	for ft, want := range map[FilingType]*bool{FirstFiling: ptr(true), AddAccess: ptr(true), CancelAccess: ptr(false),
		ChangeAccess: nil, ChangeFiling: nil, AddWebsite: nil, DeregisterSubject: nil, DeregisterWebsite: nil} {
		c, ok := HolderChangeOf(o(ft))
		if ok != (want != nil) || (ok && (c.Holds != *want || c.Tenant != "b" || c.SubjectID != "sub_1")) {
			t.Errorf("%s: %+v %v", ft, c, ok)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestMismatchBudget(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	b := MismatchBudget{Max: 2, Window: time.Hour}
	at := []time.Time{now.Add(-10 * time.Minute), now.Add(-50 * time.Minute)}
	if err := b.Check(at[:1], now); err != nil {
		t.Fatal(err)
	}
	err := b.Check(at, now)
	var de *errs.Error
	// The older of the two leaves the window in 10 minutes.
	if !errors.As(err, &de) || de.Kind != errs.KindResourceExhausted || de.Reason != ReasonRecordMismatchBudget || de.RetryAfter != 10*time.Minute {
		t.Fatalf("spent: %#v", err)
	}
	if err := (MismatchBudget{Max: 0, Window: time.Hour}).Check(at, now); err != nil {
		t.Fatalf("no budget: %v", err)
	}
}
