package domain

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/phone"
)

// residentID completes 17 digits with the GB 11643 check character.
func residentID(first17 string) string {
	w := [17]int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i := 0; i < 17; i++ {
		sum += int(first17[i]-'0') * w[i]
	}
	return first17 + string("10X98765432"[sum%11])
}

var (
	idA = residentID("11010119900307451")
	idB = residentID("31010419851120123")
	idC = residentID("44030519920615002")
)

func person(name, id, ph string) *Person {
	return &Person{Name: name, IDType: iddoc.ResidentIDCard, IDNumber: id, Phone: ph}
}

func mustNormalize(t *testing.T, r Rules, s Spec) Spec {
	t.Helper()
	n, err := r.Normalize(s)
	if err != nil {
		t.Fatalf("Normalize: %v", err)
	}
	return n
}

func TestVerifiersByFilingType(t *testing.T) {
	principal := person("张三", idA, "13812345678")
	web1 := person("李四", idB, "13912345678")
	web2 := person("王五", idC, "13712345678")
	sites := func(changed ...bool) []Website {
		ws := []Website{{Kind: KindWebsite, Domain: "a.cn", Person: web1}, {Kind: KindWebsite, Domain: "b.cn", Person: web2}}
		for i, c := range changed {
			ws[i].Changed = c
		}
		return ws
	}
	tests := []struct {
		name  string
		rules Rules
		spec  Spec
		want  [][]string // roles per verifier
		tails [][]string
	}{
		{"first filing: principal and every website", Rules{},
			Spec{FilingType: FirstFiling, Principal: principal, Websites: sites()},
			[][]string{{"principal"}, {"website:a.cn"}, {"website:b.cn"}}, nil},
		{"first filing: shared phone in another spelling verifies once", Rules{},
			Spec{FilingType: FirstFiling, Principal: principal, Websites: []Website{
				{Kind: KindWebsite, Domain: "a.cn", Person: person("张三", idA, "+86 138-1234-5678")},
				{Kind: KindWebsite, Domain: "b.cn", Person: web2}}},
			[][]string{{"principal", "website:a.cn"}, {"website:b.cn"}},
			[][]string{{iddoc.Tail(idA)}, {iddoc.Tail(idC)}}},
		{"shared phone, two persons: both tails kept", Rules{},
			Spec{FilingType: FirstFiling, Principal: principal, Websites: []Website{
				{Kind: KindWebsite, Domain: "a.cn", Person: person("李四", idB, "008613812345678")}}},
			[][]string{{"principal", "website:a.cn"}},
			[][]string{{iddoc.Tail(idA), iddoc.Tail(idB)}}},
		{"add website: new websites only by default", Rules{},
			Spec{FilingType: AddWebsite, SubjectID: "sub_1", Principal: principal, Websites: sites()},
			[][]string{{"website:a.cn"}, {"website:b.cn"}}, nil},
		{"add website: principal when configured", Rules{AddWebsitePrincipal: true},
			Spec{FilingType: AddWebsite, SubjectID: "sub_1", Principal: principal, Websites: sites()[:1]},
			[][]string{{"principal"}, {"website:a.cn"}}, nil},
		{"add website: principal when subject data changes", Rules{},
			Spec{FilingType: AddWebsite, SubjectID: "sub_1", Principal: principal, Websites: sites()[:1], SubjectChanged: true},
			[][]string{{"principal"}, {"website:a.cn"}}, nil},
		{"add access: listed websites' persons", Rules{},
			Spec{FilingType: AddAccess, SubjectID: "sub_1", Principal: principal, Websites: sites()},
			[][]string{{"website:a.cn"}, {"website:b.cn"}}, nil},
		{"change filing: subject changed and one changed website", Rules{},
			Spec{FilingType: ChangeFiling, SubjectID: "sub_1", Principal: principal, Websites: sites(false, true), SubjectChanged: true},
			[][]string{{"principal"}, {"website:b.cn"}}, nil},
		{"change filing: remarks only -> nobody", Rules{},
			Spec{FilingType: ChangeFiling, SubjectID: "sub_1", Principal: principal, Websites: sites(false, false)},
			nil, nil},
		{"change access: nobody", Rules{},
			Spec{FilingType: ChangeAccess, SubjectID: "sub_1", Principal: principal, Websites: sites()}, nil, nil},
		{"cancel access: nobody", Rules{},
			Spec{FilingType: CancelAccess, SubjectID: "sub_1", Websites: sites()}, nil, nil},
		{"deregister subject: principal", Rules{},
			Spec{FilingType: DeregisterSubject, SubjectID: "sub_1", Principal: principal, Websites: sites()},
			[][]string{{"principal"}}, nil},
		{"deregister website: that website's person", Rules{},
			Spec{FilingType: DeregisterWebsite, SubjectID: "sub_1", Principal: principal, Websites: sites()[1:]},
			[][]string{{"website:b.cn"}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.rules.Verifiers(mustNormalize(t, tt.rules, tt.spec))
			var roles, tails [][]string
			for _, v := range got {
				roles = append(roles, v.Roles)
				tails = append(tails, v.IDTails)
				if v.Phone[0] != '+' {
					t.Errorf("phone %q is not E.164", v.Phone)
				}
			}
			if !reflect.DeepEqual(roles, tt.want) {
				t.Errorf("roles = %v, want %v", roles, tt.want)
			}
			if tt.tails != nil && !reflect.DeepEqual(tails, tt.tails) {
				t.Errorf("tails = %v, want %v", tails, tt.tails)
			}
		})
	}
}

func TestSharedPhoneGivesTwoVerifiers(t *testing.T) {
	spec := Spec{FilingType: FirstFiling, Principal: person("张三", idA, "13812345678"), Websites: []Website{
		{Kind: KindWebsite, Domain: "a.cn", Person: person("张三", idA, "+86 138 1234 5678")},
		{Kind: KindWebsite, Domain: "b.cn", Person: person("王五", idC, "13712345678")},
	}}
	got := Rules{}.Verifiers(mustNormalize(t, Rules{}, spec))
	if len(got) != 2 || got[0].Phone != "+8613812345678" || got[1].Phone != "+8613712345678" {
		t.Fatalf("verifiers = %+v, want 2 (+8613812345678, +8613712345678)", got)
	}
}

func TestValidationErrors(t *testing.T) {
	ok := person("张三", idA, "13812345678")
	tests := []struct {
		name        string
		rules       Rules
		spec        Spec
		field, want string
	}{
		{"no type", Rules{}, Spec{}, "spec.filing_type", ReasonMissingFilingType},
		{"unknown type", Rules{}, Spec{FilingType: 42}, "spec.filing_type", ReasonInvalidFilingType},
		{"subject id on first filing", Rules{}, Spec{FilingType: FirstFiling, SubjectID: "sub_1"}, "spec.subject_id", ReasonUnexpectedSubjectID},
		{"no subject id", Rules{}, Spec{FilingType: ChangeAccess}, "spec.subject_id", ReasonMissingSubjectID},
		{"no principal on first filing", Rules{}, Spec{FilingType: FirstFiling, Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: ok}}},
			"spec.principal", ReasonMissingPrincipal},
		{"no principal on deregister subject", Rules{}, Spec{FilingType: DeregisterSubject, SubjectID: "s"}, "spec.principal", ReasonMissingPrincipal},
		{"no principal on change filing with subject change", Rules{}, Spec{FilingType: ChangeFiling, SubjectID: "s", SubjectChanged: true},
			"spec.principal", ReasonMissingPrincipal},
		{"no principal on add website when principal verifies", Rules{AddWebsitePrincipal: true},
			Spec{FilingType: AddWebsite, SubjectID: "s", Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: ok}}}, "spec.principal", ReasonMissingPrincipal},
		{"no websites on first filing", Rules{}, Spec{FilingType: FirstFiling, Principal: ok}, "spec.services", ReasonMissingWebsites},
		{"no websites on deregister website", Rules{}, Spec{FilingType: DeregisterWebsite, SubjectID: "s"}, "spec.services", ReasonMissingWebsites},
		{"empty domain", Rules{}, Spec{FilingType: AddAccess, SubjectID: "s", Websites: []Website{{Kind: KindWebsite, Domain: " ", Person: ok}}},
			"spec.websites[0].domain", ReasonMissingDomain},
		{"duplicate domain in another case", Rules{}, Spec{FilingType: AddAccess, SubjectID: "s", Websites: []Website{
			{Kind: KindWebsite, Domain: "a.cn", Person: ok}, {Kind: KindWebsite, Domain: "A.CN", Person: ok}}}, "spec.websites[1].domain", ReasonDuplicateDomain},
		{"website person missing", Rules{}, Spec{FilingType: FirstFiling, Principal: ok, Websites: []Website{{Kind: KindWebsite, Domain: "a.cn"}}},
			"spec.websites[0].person", ReasonMissingPerson},
		{"bad phone", Rules{}, Spec{FilingType: FirstFiling, Principal: ok, Websites: []Website{
			{Kind: KindWebsite, Domain: "a.cn", Person: ok}, {Kind: KindWebsite, Domain: "b.cn", Person: person("李四", idB, "12345")}}},
			"spec.websites[1].person.phone", phone.ReasonInvalidPhone},
		{"landline phone", Rules{}, Spec{FilingType: FirstFiling, Principal: person("张三", idA, "010-62345678"),
			Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: ok}}}, "spec.principal.phone", phone.ReasonInvalidPhone},
		{"bad emergency phone", Rules{}, Spec{FilingType: FirstFiling, Principal: &Person{Name: "张三", IDType: iddoc.ResidentIDCard,
			IDNumber: idA, Phone: "13812345678", EmergencyPhone: "x"}, Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: ok}}},
			"spec.principal.emergency_phone", phone.ReasonInvalidPhone},
		{"no name", Rules{}, Spec{FilingType: FirstFiling, Principal: person(" ", idA, "13812345678")}, "spec.principal.name", ReasonMissingName},
		{"unknown id type", Rules{}, Spec{FilingType: FirstFiling, Principal: &Person{Name: "x", IDNumber: idA, Phone: "13812345678"}},
			"spec.principal.id_type", iddoc.ReasonInvalidIDType},
		{"bad check digit", Rules{}, Spec{FilingType: FirstFiling, Principal: person("张三", "110101199003074510", "13812345678")},
			"spec.principal.id_number", iddoc.ReasonInvalidIDNumber},
		// subject_changed belongs to CHANGE_FILING and ADD_WEBSITE only: on ADD_ACCESS it would let an
		// unverified principal number into the record at approval.
		{"subject changed on add access", Rules{}, Spec{FilingType: AddAccess, SubjectID: "s", SubjectChanged: true, Principal: ok,
			Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: ok}}}, "spec.subject_changed", ReasonUnexpectedSubjectChanged},
		{"subject changed on deregister subject", Rules{}, Spec{FilingType: DeregisterSubject, SubjectID: "s", SubjectChanged: true, Principal: ok},
			"spec.subject_changed", ReasonUnexpectedSubjectChanged},
		{"subject changed on first filing", Rules{}, Spec{FilingType: FirstFiling, SubjectChanged: true, Principal: ok,
			Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: ok}}}, "spec.subject_changed", ReasonUnexpectedSubjectChanged},
		{"website changed on add website", Rules{}, Spec{FilingType: AddWebsite, SubjectID: "s", Websites: []Website{
			{Kind: KindWebsite, Domain: "a.cn", Person: ok}, {Kind: KindWebsite, Domain: "b.cn", Person: ok, Changed: true}}}, "spec.websites[1].changed", ReasonUnexpectedWebsiteChanged},
		{"website changed on deregister website", Rules{}, Spec{FilingType: DeregisterWebsite, SubjectID: "s", Websites: []Website{
			{Kind: KindWebsite, Domain: "a.cn", Person: ok, Changed: true}}}, "spec.websites[0].changed", ReasonUnexpectedWebsiteChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.rules.Normalize(tt.spec)
			var de *errs.Error
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want a domain error", err)
			}
			if de.Kind != errs.KindInvalidArgument || de.Field != tt.field || de.Reason != tt.want {
				t.Fatalf("got kind %d field %q reason %q, want field %q reason %q", de.Kind, de.Field, de.Reason, tt.field, tt.want)
			}
		})
	}
}

func TestNormalizeCleansValues(t *testing.T) {
	s := mustNormalize(t, Rules{}, Spec{FilingType: FirstFiling, Principal: &Person{Name: " 张三 ", IDType: iddoc.ResidentIDCard,
		IDNumber: " " + idA + " ", Phone: "86-138-1234-5678", EmergencyPhone: "13912345678"},
		Websites: []Website{{Kind: KindWebsite, Domain: " Example.CN. ", Person: person("李四", idB, "13712345678")}}})
	if s.Principal.Name != "张三" || s.Principal.IDNumber != idA || s.Principal.Phone != "+8613812345678" ||
		s.Principal.EmergencyPhone != "+8613912345678" || s.Services[0].Domain != "example.cn" {
		t.Fatalf("normalized = %+v %+v", s.Principal, s.Services[0])
	}
}

func TestEmergencyPhoneNeverVerifies(t *testing.T) {
	p := &Person{Name: "张三", IDType: iddoc.ResidentIDCard, IDNumber: idA, Phone: "13812345678", EmergencyPhone: "13912345678"}
	s := mustNormalize(t, Rules{}, Spec{FilingType: DeregisterSubject, SubjectID: "s", Principal: p})
	got := Rules{}.Verifiers(s)
	if len(got) != 1 || got[0].Phone != "+8613812345678" {
		t.Fatalf("verifiers = %+v", got)
	}
}

func TestPhoneChangeRule(t *testing.T) {
	rec := Subject{ID: "sub_1", Principal: mustPerson(t, person("张三", idA, "13812345678")), Services: []Service{
		{Kind: KindWebsite, Domain: "a.cn", Person: mustPerson(t, person("李四", idB, "13912345678"))},
		{Kind: KindWebsite, Domain: "b.cn", Person: mustPerson(t, person("王五", idC, "13712345678"))},
	}}
	newPrincipal := person("张三", idA, "13600000000")
	samePrincipal := person("张三", idA, "+86 138 1234 5678")
	newA := Website{Kind: KindWebsite, Domain: "a.cn", Person: person("李四", idB, "13600000001")}
	sameA := Website{Kind: KindWebsite, Domain: "a.cn", Person: person("李四", idB, "13912345678")}
	otherIDPrincipal := person("张三", idC, "13812345678") // the record's number, another person's ID
	passportPrincipal := &Person{Name: "张三", IDType: iddoc.Passport, IDNumber: "E12345678", Phone: "13812345678"}
	otherIDA := Website{Kind: KindWebsite, Domain: "a.cn", Person: person("李四", idC, "13912345678")}
	tests := []struct {
		name  string
		rules Rules
		spec  Spec
		want  string // reason, "" for ok
	}{
		{"deregister subject, same number in another spelling", Rules{}, Spec{FilingType: DeregisterSubject, Principal: samePrincipal}, ""},
		{"deregister subject, new number", Rules{}, Spec{FilingType: DeregisterSubject, Principal: newPrincipal}, ReasonPhoneChangeRequiresChangeFiling},
		{"deregister website, new number", Rules{}, Spec{FilingType: DeregisterWebsite, Websites: []Website{newA}}, ReasonPhoneChangeRequiresChangeFiling},
		{"deregister website, same number", Rules{}, Spec{FilingType: DeregisterWebsite, Websites: []Website{sameA}}, ""},
		{"deregister website not in record", Rules{}, Spec{FilingType: DeregisterWebsite,
			Websites: []Website{{Kind: KindWebsite, Domain: "c.cn", Person: person("李四", idB, "13912345678")}}}, ReasonWebsiteNotInRecord},
		{"add access, new number", Rules{}, Spec{FilingType: AddAccess, Websites: []Website{newA}}, ReasonPhoneChangeRequiresChangeFiling},
		{"add access, website not in record", Rules{}, Spec{FilingType: AddAccess,
			Websites: []Website{{Kind: KindWebsite, Domain: "c.cn", Person: person("李四", idB, "13912345678")}}}, ReasonWebsiteNotInRecord},
		{"change filing may carry a new principal number", Rules{}, Spec{FilingType: ChangeFiling, SubjectChanged: true, Principal: newPrincipal}, ""},
		{"change filing may carry a new website number", Rules{}, Spec{FilingType: ChangeFiling, Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: newA.Person, Changed: true}}}, ""},
		{"add website may carry a new principal number", Rules{AddWebsitePrincipal: true}, Spec{FilingType: AddWebsite, Principal: newPrincipal,
			Websites: []Website{{Kind: KindWebsite, Domain: "c.cn", Person: person("赵六", idC, "13500000000")}}}, ""},
		// Every person given is compared on the types that must match the record, not only those who verify.
		{"change access: a given principal on a new number", Rules{}, Spec{FilingType: ChangeAccess, Principal: newPrincipal}, ReasonPhoneChangeRequiresChangeFiling},
		{"add access: the non-verifying principal on a new number", Rules{}, Spec{FilingType: AddAccess, Principal: newPrincipal, Websites: []Website{sameA}},
			ReasonPhoneChangeRequiresChangeFiling},
		{"add access: the record's principal", Rules{}, Spec{FilingType: AddAccess, Principal: samePrincipal, Websites: []Website{sameA}}, ""},
		// The ID document must be the record's, or the submitter picks the tail the verifier is checked against.
		{"deregister subject, record's number, another ID", Rules{}, Spec{FilingType: DeregisterSubject, Principal: otherIDPrincipal}, ReasonIDMismatchWithRecord},
		{"deregister subject, another ID type", Rules{}, Spec{FilingType: DeregisterSubject, Principal: passportPrincipal}, ReasonIDMismatchWithRecord},
		{"deregister website, another ID", Rules{}, Spec{FilingType: DeregisterWebsite, Websites: []Website{otherIDA}}, ReasonIDMismatchWithRecord},
		{"add access, another ID", Rules{}, Spec{FilingType: AddAccess, Websites: []Website{otherIDA}}, ReasonIDMismatchWithRecord},
		{"change access, principal with another ID", Rules{}, Spec{FilingType: ChangeAccess, Principal: otherIDPrincipal}, ReasonIDMismatchWithRecord},
		{"change filing, unchanged website with another ID", Rules{}, Spec{FilingType: ChangeFiling, Websites: []Website{otherIDA}}, ReasonIDMismatchWithRecord},
		{"change filing, unchanged subject with another principal ID", Rules{}, Spec{FilingType: ChangeFiling, Principal: otherIDPrincipal,
			Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: newA.Person, Changed: true}}}, ReasonIDMismatchWithRecord},
		{"change filing, changed website with a new person", Rules{}, Spec{FilingType: ChangeFiling,
			Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: otherIDA.Person, Changed: true}}}, ""},
		{"change filing, changed subject with a new principal", Rules{}, Spec{FilingType: ChangeFiling, SubjectChanged: true, Principal: passportPrincipal}, ""},
		{"add website, unchanged subject with another principal ID", Rules{}, Spec{FilingType: AddWebsite, Principal: otherIDPrincipal,
			Websites: []Website{{Kind: KindWebsite, Domain: "c.cn", Person: person("赵六", idC, "13500000000")}}}, ReasonIDMismatchWithRecord},
		{"add website, changed subject with a new principal", Rules{}, Spec{FilingType: AddWebsite, SubjectChanged: true, Principal: otherIDPrincipal,
			Websites: []Website{{Kind: KindWebsite, Domain: "c.cn", Person: person("赵六", idC, "13500000000")}}}, ""},
		// Record membership.
		{"add website of a domain already in the record", Rules{}, Spec{FilingType: AddWebsite, Websites: []Website{sameA}}, ReasonWebsiteAlreadyInRecord},
		{"change filing of a website not in the record", Rules{}, Spec{FilingType: ChangeFiling,
			Websites: []Website{{Kind: KindWebsite, Domain: "c.cn", Person: person("赵六", idC, "13500000000"), Changed: true}}}, ReasonWebsiteNotInRecord},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.spec.SubjectID = "sub_1"
			err := tt.rules.CheckAgainstRecord(mustNormalize(t, tt.rules, tt.spec), rec)
			if got := errs.Reason(err); got != tt.want {
				t.Fatalf("reason = %q (%v), want %q", got, err, tt.want)
			}
			if err != nil {
				var de *errs.Error
				if errors.As(err, &de); de.Kind != errs.KindFailedPrecondition {
					t.Fatalf("kind = %d, want FailedPrecondition", de.Kind)
				}
				for _, n := range []string{idA, idB, idC, "E12345678"} {
					if strings.Contains(de.Message, n) || strings.Contains(de.Message, iddoc.Tail(n)) {
						t.Fatalf("message %q shows an ID number", de.Message)
					}
				}
			}
		})
	}
}

func mustPerson(t *testing.T, p *Person) *Person {
	t.Helper()
	n, err := Rules{}.normalizePerson("p", *p)
	if err != nil {
		t.Fatal(err)
	}
	return &n
}

func TestApplyApproval(t *testing.T) {
	p := mustPerson(t, person("张三", idA, "13812345678"))
	pNew := mustPerson(t, person("张三", idA, "13600000000"))
	wa := Website{Kind: KindWebsite, Domain: "a.cn", Person: mustPerson(t, person("李四", idB, "13912345678"))}
	wb := Website{Kind: KindWebsite, Domain: "b.cn", Person: mustPerson(t, person("王五", idC, "13712345678"))}
	first := ApplyApproval(Spec{FilingType: FirstFiling, SubjectName: "公司", Principal: p, Services: []Service{wa}}, Subject{}, "sub_new")
	if first.ID != "sub_new" || first.Name != "公司" || first.Principal.Phone != p.Phone || len(first.Services) != 1 {
		t.Fatalf("first filing record = %+v", first)
	}
	added := ApplyApproval(Spec{FilingType: AddWebsite, Services: []Service{wb}}, first, "")
	if _, ok := added.Service("website:b.cn"); !ok || len(added.Services) != 2 {
		t.Fatalf("add website record = %+v", added)
	}
	changed := ApplyApproval(Spec{FilingType: ChangeFiling, SubjectChanged: true, Principal: pNew,
		Services: []Service{{Kind: KindWebsite, Domain: "a.cn", Person: pNew, Changed: true}, {Kind: KindWebsite, Domain: "b.cn", Person: p}}}, added, "")
	if changed.Principal.Phone != pNew.Phone {
		t.Fatalf("principal phone not changed: %+v", changed.Principal)
	}
	if w, _ := changed.Service("website:a.cn"); w.Person.Phone != pNew.Phone {
		t.Fatalf("changed website not updated: %+v", w.Person)
	}
	if w, _ := changed.Service("website:b.cn"); w.Person.Phone != wb.Person.Phone {
		t.Fatalf("unchanged website was updated: %+v", w.Person)
	}
	removed := ApplyApproval(Spec{FilingType: DeregisterWebsite, Services: []Service{{Kind: KindWebsite, Domain: "a.cn"}}}, changed, "")
	if _, ok := removed.Service("website:a.cn"); ok || len(removed.Services) != 1 {
		t.Fatalf("deregister website record = %+v", removed)
	}
	// ADD_ACCESS never touches subject data, whatever the spec says (validation refuses subject_changed
	// there; this is the second line of defence).
	if acc := ApplyApproval(Spec{FilingType: AddAccess, SubjectChanged: true, Principal: p, SubjectName: "x",
		Websites: []Website{{Kind: KindWebsite, Domain: "b.cn", Person: wb.Person}}}, changed, ""); acc.Principal.Phone != pNew.Phone || acc.Name != "公司" {
		t.Fatalf("add access changed subject data: %+v", acc)
	}
	if gone := ApplyApproval(Spec{FilingType: DeregisterSubject}, removed, ""); !gone.Deregistered {
		t.Fatal("deregister subject did not mark the record")
	}
}

func TestStateMachine(t *testing.T) {
	all := []State{StateDraft, StateAwaitingVerification, StateUnderReview, StateApproved, StateRejected, StateReturned, StateCancelled}
	allowed := map[State]map[Event]State{
		StateDraft:                {EventSubmit: StateAwaitingVerification, EventCancel: StateCancelled},
		StateReturned:             {EventSubmit: StateAwaitingVerification, EventCancel: StateCancelled},
		StateAwaitingVerification: {EventVerified: StateUnderReview, EventReturn: StateReturned, EventCancel: StateCancelled},
		StateUnderReview:          {EventApprove: StateApproved, EventReject: StateRejected},
	}
	for _, from := range all {
		for ev := EventSubmit; ev <= EventReject; ev++ {
			want, ok := allowed[from][ev]
			got, err := Next(from, ev, true)
			if ok && (err != nil || got != want) {
				t.Errorf("%s --%s--> %s, %v; want %s", from, ev, got, err, want)
			}
			if !ok && errs.Reason(err) != ReasonInvalidStateTransition {
				t.Errorf("%s --%s--> %s, %v; want INVALID_STATE_TRANSITION", from, ev, got, err)
			}
		}
	}
	for _, from := range []State{StateDraft, StateReturned} {
		if got, err := Next(from, EventSubmit, false); err != nil || got != StateUnderReview {
			t.Errorf("submit from %s with nobody to verify = %s, %v; want UNDER_REVIEW", from, got, err)
		}
	}
	if _, err := Next(StateApproved, EventCancel, true); err == nil || !strings.Contains(err.Error(), "APPROVED") {
		t.Errorf("error %v does not name the state", err)
	}
	for _, s := range all {
		err := CheckUpdatable(s)
		if want := s == StateDraft || s == StateReturned; (err == nil) != want {
			t.Errorf("CheckUpdatable(%s) = %v", s, err)
		}
		if p, err := ParseState(s.String()); err != nil || p != s {
			t.Errorf("ParseState(%s) = %v, %v", s, p, err)
		}
	}
}

func TestVerificationOutcome(t *testing.T) {
	tests := []struct {
		name       string
		state      State
		ev         Event
		submission int32
		wantState  State
		wantApply  bool
		wantReason string
	}{
		{"verified", StateAwaitingVerification, EventVerified, 2, StateUnderReview, true, ""},
		{"verified again", StateUnderReview, EventVerified, 2, StateUnderReview, false, ""},
		{"returned", StateAwaitingVerification, EventReturn, 2, StateReturned, true, ""},
		{"returned again", StateReturned, EventReturn, 2, StateReturned, false, ""},
		{"stale verified", StateAwaitingVerification, EventVerified, 1, StateAwaitingVerification, false, ReasonStaleSubmission},
		{"stale return", StateAwaitingVerification, EventReturn, 3, StateAwaitingVerification, false, ReasonStaleSubmission},
		{"verified after return", StateReturned, EventVerified, 2, StateReturned, false, ReasonInvalidStateTransition},
		{"return after cancel", StateCancelled, EventReturn, 2, StateCancelled, false, ReasonInvalidStateTransition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to, apply, err := VerificationOutcome(Order{State: tt.state, Submission: 2}, tt.ev, tt.submission)
			if errs.Reason(err) != tt.wantReason || apply != tt.wantApply || (err == nil && to != tt.wantState) {
				t.Fatalf("got %s apply=%v err=%v", to, apply, err)
			}
		})
	}
}
