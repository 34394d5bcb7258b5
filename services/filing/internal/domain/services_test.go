package domain

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/iddoc"
)

// The services of the tests: one of each kind, each with its own person and phone.
var (
	pWeb   = person("李四", idB, "13912345678")
	pApp   = person("王五", idC, "13712345678")
	pMini  = person("赵六", idB, "13612345678")
	pQuick = person("孙七", idC, "13512345678")
)

func website() Service { return Service{Kind: KindWebsite, Domain: "a.cn", Person: pWeb} }
func app() Service {
	return Service{Kind: KindApp, Name: "示例商城", Person: pApp, AppIDs: []AppID{
		{Platform: PlatformAndroid, ID: "com.example.shop"}, {Platform: PlatformIOS, ID: "com.example.Shop-iOS"}}}
}
func mini() Service {
	return Service{Kind: KindMiniProgram, Name: "示例小程序", MiniPlatform: MiniWeChat, MiniAppID: "WX0123456789ABCDEF", Person: pMini}
}
func quick() Service {
	return Service{Kind: KindQuickApp, Name: "示例快应用", Package: "com.example.quick", Person: pQuick}
}

func allServices(changed ...bool) []Service {
	out := []Service{website(), app(), mini(), quick()}
	for i, c := range changed {
		out[i].Changed = c
	}
	return out
}

const (
	roleWeb   = "website:a.cn"
	roleApp   = "app:示例商城"
	roleMini  = "mini_program:WECHAT:wx0123456789abcdef"
	roleQuick = "quick_app:com.example.quick"
)

// TestServiceVerifiersByFilingType is domain.md's table with every kind of service: "website" read
// as "service".
func TestServiceVerifiersByFilingType(t *testing.T) {
	principal := person("张三", idA, "13812345678")
	tests := []struct {
		name  string
		rules Rules
		spec  Spec
		want  [][]string
	}{
		{"first filing: principal and every service's person", Rules{},
			Spec{FilingType: FirstFiling, Principal: principal, Services: allServices()},
			[][]string{{RolePrincipal}, {roleWeb}, {roleApp}, {roleMini}, {roleQuick}}},
		{"first filing, APP only", Rules{}, Spec{FilingType: FirstFiling, Principal: principal, Services: []Service{app()}},
			[][]string{{RolePrincipal}, {roleApp}}},
		{"add service: the new services' persons", Rules{},
			Spec{FilingType: AddWebsite, SubjectID: "s", Principal: principal, Services: []Service{app(), quick()}},
			[][]string{{roleApp}, {roleQuick}}},
		{"add service: the principal when configured", Rules{AddWebsitePrincipal: true},
			Spec{FilingType: AddWebsite, SubjectID: "s", Principal: principal, Services: []Service{mini()}},
			[][]string{{RolePrincipal}, {roleMini}}},
		{"add access: the moved services' persons", Rules{},
			Spec{FilingType: AddAccess, SubjectID: "s", Principal: principal, Services: allServices()},
			[][]string{{roleWeb}, {roleApp}, {roleMini}, {roleQuick}}},
		{"change filing: the changed services only", Rules{},
			Spec{FilingType: ChangeFiling, SubjectID: "s", Principal: principal, Services: allServices(false, true, false, true)},
			[][]string{{roleApp}, {roleQuick}}},
		{"change filing: subject and a changed mini programme", Rules{},
			Spec{FilingType: ChangeFiling, SubjectID: "s", SubjectChanged: true, Principal: principal, Services: allServices(false, false, true)},
			[][]string{{RolePrincipal}, {roleMini}}},
		{"change filing: nothing changed -> nobody", Rules{},
			Spec{FilingType: ChangeFiling, SubjectID: "s", Principal: principal, Services: allServices()}, nil},
		{"change access: nobody", Rules{}, Spec{FilingType: ChangeAccess, SubjectID: "s", Services: allServices()}, nil},
		{"cancel access: nobody", Rules{}, Spec{FilingType: CancelAccess, SubjectID: "s", Services: allServices()}, nil},
		{"deregister subject: the principal", Rules{},
			Spec{FilingType: DeregisterSubject, SubjectID: "s", Principal: principal, Services: allServices()}, [][]string{{RolePrincipal}}},
		{"deregister APP (注销APP): that service's person", Rules{},
			Spec{FilingType: DeregisterWebsite, SubjectID: "s", Principal: principal, Services: []Service{app()}}, [][]string{{roleApp}}},
		{"deregister mini programme and quick app", Rules{},
			Spec{FilingType: DeregisterWebsite, SubjectID: "s", Services: []Service{mini(), quick()}}, [][]string{{roleMini}, {roleQuick}}},
		{"one phone across services verifies once", Rules{}, Spec{FilingType: FirstFiling, Principal: principal, Services: []Service{
			website(), {Kind: KindApp, Name: "同号", Person: pWeb, AppIDs: []AppID{{Platform: PlatformHarmony, ID: "com.example.hm"}}}}},
			[][]string{{RolePrincipal}, {roleWeb, "app:同号"}}},
		{"websites and services together", Rules{}, Spec{FilingType: FirstFiling, Principal: principal,
			Websites: []Website{{Domain: "w.cn", Person: principal}}, Services: []Service{app()}},
			[][]string{{RolePrincipal, "website:w.cn"}, {roleApp}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var roles [][]string
			for _, v := range tt.rules.Verifiers(mustNormalize(t, tt.rules, tt.spec)) {
				roles = append(roles, v.Roles)
			}
			if !reflect.DeepEqual(roles, tt.want) {
				t.Errorf("roles = %v, want %v", roles, tt.want)
			}
		})
	}
}

// TestServiceShapes: what each kind needs, and the field and reason of what it lacks.
func TestServiceShapes(t *testing.T) {
	with := func(s Service, change func(*Service)) Service { change(&s); return s }
	tests := []struct {
		name       string
		services   []Service
		field, why string // "" for ok
	}{
		{"every kind", allServices(), "", ""},
		{"no kind", []Service{with(app(), func(s *Service) { s.Kind = 0 })}, "spec.services[0].kind", ReasonInvalidServiceKind},
		{"unknown kind", []Service{with(app(), func(s *Service) { s.Kind = 9 })}, "spec.services[0].kind", ReasonInvalidServiceKind},
		{"website without a domain", []Service{with(website(), func(s *Service) { s.Domain = "" })}, "spec.services[0].domain", ReasonMissingDomain},
		{"website with an APP's ids", []Service{with(website(), func(s *Service) { s.AppIDs = app().AppIDs })},
			"spec.services[0].app_platforms", ReasonUnexpectedServiceField},
		{"APP without a name", []Service{with(app(), func(s *Service) { s.Name = " " })}, "spec.services[0].name", ReasonMissingName},
		{"APP without platforms", []Service{with(app(), func(s *Service) { s.AppIDs = nil })}, "spec.services[0].app_platforms", ReasonMissingAppPlatforms},
		{"APP platform unknown", []Service{with(app(), func(s *Service) { s.AppIDs = []AppID{{Platform: 7, ID: "com.a.b"}} })},
			"spec.services[0].app_platforms[0].platform", ReasonInvalidAppPlatform},
		{"APP platform twice", []Service{with(app(), func(s *Service) { s.AppIDs[1].Platform = PlatformAndroid })},
			"spec.services[0].app_platforms[1].platform", ReasonInvalidAppPlatform},
		{"APP package not reverse-domain", []Service{with(app(), func(s *Service) { s.AppIDs[1].ID = "shop" })},
			"spec.services[0].app_platforms[1].package_or_bundle_id", ReasonInvalidPackageName},
		{"APP package with a space", []Service{with(app(), func(s *Service) { s.AppIDs[0].ID = "com.example shop" })},
			"spec.services[0].app_platforms[0].package_or_bundle_id", ReasonInvalidPackageName},
		{"APP with a domain", []Service{with(app(), func(s *Service) { s.Domain = "a.cn" })}, "spec.services[0].domain", ReasonUnexpectedServiceField},
		{"mini programme without platform", []Service{with(mini(), func(s *Service) { s.MiniPlatform = 0 })},
			"spec.services[0].mini_program_platform", ReasonInvalidMiniProgramPlatform},
		{"WeChat app id of the wrong shape", []Service{with(mini(), func(s *Service) { s.MiniAppID = "wx12" })},
			"spec.services[0].mini_program_app_id", ReasonInvalidMiniProgramAppID},
		{"Alipay app id", []Service{with(mini(), func(s *Service) { s.MiniPlatform, s.MiniAppID = MiniAlipay, "2021001234567890" })}, "", ""},
		{"Alipay app id of WeChat's shape", []Service{with(mini(), func(s *Service) { s.MiniPlatform = MiniAlipay })},
			"spec.services[0].mini_program_app_id", ReasonInvalidMiniProgramAppID},
		{"Baidu app id", []Service{with(mini(), func(s *Service) { s.MiniPlatform, s.MiniAppID = MiniBaidu, "17654321" })}, "", ""},
		{"mini programme without a name", []Service{with(mini(), func(s *Service) { s.Name = "" })}, "spec.services[0].name", ReasonMissingName},
		{"quick app without package", []Service{with(quick(), func(s *Service) { s.Package = "" })},
			"spec.services[0].quick_app_package", ReasonInvalidPackageName},
		{"quick app with a mini programme's id", []Service{with(quick(), func(s *Service) { s.MiniAppID = "wx0123456789abcdef" })},
			"spec.services[0].mini_program_app_id", ReasonUnexpectedServiceField},
		{"quick app with a mini programme platform", []Service{with(quick(), func(s *Service) { s.MiniPlatform = MiniQQ })},
			"spec.services[0].mini_program_platform", ReasonUnexpectedServiceField},
		{"mini programme with a package", []Service{with(mini(), func(s *Service) { s.Package = "com.a.b" })},
			"spec.services[0].quick_app_package", ReasonUnexpectedServiceField},
		{"the same APP twice", []Service{app(), with(app(), func(s *Service) { s.Person = pWeb })}, "spec.services[1]", ReasonDuplicateService},
		{"the same mini programme in another case", []Service{mini(), with(mini(), func(s *Service) { s.MiniAppID = "wx0123456789abcdef" })},
			"spec.services[1]", ReasonDuplicateService},
		{"an APP and a quick app of one package", []Service{app(), with(quick(), func(s *Service) { s.Package = "com.example.shop" })}, "", ""},
		{"a person missing", []Service{with(quick(), func(s *Service) { s.Person = nil })}, "spec.services[0].person", ReasonMissingPerson},
		{"a person's phone", []Service{with(app(), func(s *Service) { s.Person = person("王五", idC, "12345") })},
			"spec.services[0].person.phone", "INVALID_PHONE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Spec{FilingType: FirstFiling, Principal: person("张三", idA, "13812345678"), Services: tt.services}
			_, err := Rules{}.Normalize(s)
			if tt.why == "" {
				if err != nil {
					t.Fatalf("Normalize: %v", err)
				}
				return
			}
			wantInvalid(t, err, tt.field, tt.why)
		})
	}
}

// TestWebsitesAndServices: the legacy list is read first, its fields named as given, and a website
// in both lists is listed twice.
func TestWebsitesAndServices(t *testing.T) {
	s := Spec{FilingType: FirstFiling, Principal: person("张三", idA, "13812345678"),
		Websites: []Website{{Domain: "W.cn", Person: pWeb}}, Services: []Service{app(), {Kind: KindWebsite, Domain: "v.cn", Person: pWeb}}}
	n := mustNormalize(t, Rules{}, s)
	if len(n.Websites) != 0 || len(n.Services) != 3 || n.Services[0].Kind != KindWebsite || n.Services[0].Domain != "w.cn" {
		t.Fatalf("normalized services = %+v", n.Services)
	}
	s.Services = append(s.Services, Service{Kind: KindWebsite, Domain: "w.cn", Person: pWeb})
	if de := wantInvalid(t, errOf(Rules{}.Normalize(s)), "spec.services[2].domain", ReasonDuplicateDomain); de.Message != "the domain is already listed as websites[0]" {
		t.Errorf("message = %q", de.Message)
	}
	s.Services = nil
	s.Websites = []Website{{Domain: "w.cn", Person: pWeb}, {Domain: "x.cn", Person: person("王五", idC, "bad")}}
	wantInvalid(t, errOf(Rules{}.Normalize(s)), "spec.websites[1].person.phone", "INVALID_PHONE")
	s.Websites = []Website{app()}
	wantInvalid(t, errOf(Rules{}.Normalize(s)), "spec.websites[0].kind", ReasonInvalidServiceKind)
}

func errOf(_ Spec, err error) error { return err }

// TestServicesAgainstTheRecord: a service is its kind and key; ADD_* names services not in the
// record, every other type services in it; an approval adds, changes and removes services.
func TestServicesAgainstTheRecord(t *testing.T) {
	r := Rules{}
	rec := ApplyApproval(mustNormalize(t, r, Spec{FilingType: FirstFiling, Principal: person("张三", idA, "13812345678"),
		Services: []Service{website(), app()}, Province: "ZJ"}), Subject{}, "sub_1")
	if len(rec.Services) != 2 || rec.Province != ProvinceZhejiang {
		t.Fatalf("record = %+v", rec)
	}
	check := func(s Spec) error {
		s.SubjectID = "sub_1"
		return r.CheckAgainstRecord(mustNormalize(t, r, s), rec)
	}
	renamed := app()
	renamed.Name = "另一个APP"
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"add an APP already in the record", Spec{FilingType: AddWebsite, Services: []Service{app()}}, ReasonWebsiteAlreadyInRecord},
		{"add a new mini programme", Spec{FilingType: AddWebsite, Services: []Service{mini()}}, ""},
		{"deregister an APP of the record", Spec{FilingType: DeregisterWebsite, Services: []Service{app()}}, ""},
		{"deregister an APP not in the record", Spec{FilingType: DeregisterWebsite, Services: []Service{renamed}}, ReasonWebsiteNotInRecord},
		{"deregister an APP, its person on a new number", Spec{FilingType: DeregisterWebsite, Services: []Service{
			{Kind: KindApp, Name: "示例商城", AppIDs: app().AppIDs, Person: person("王五", idC, "13600000000")}}}, ReasonPhoneChangeRequiresChangeFiling},
		{"deregister an APP, another person", Spec{FilingType: DeregisterWebsite, Services: []Service{
			{Kind: KindApp, Name: "示例商城", AppIDs: app().AppIDs, Person: person("王五", idA, "13712345678")}}}, ReasonIDMismatchWithRecord},
		{"change a quick app not in the record", Spec{FilingType: ChangeFiling, Services: []Service{func() Service {
			q := quick()
			q.Changed = true
			return q
		}()}}, ReasonWebsiteNotInRecord},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := errs.Reason(check(tc.spec)); got != tc.want {
				t.Fatalf("reason = %q, want %q", got, tc.want)
			}
		})
	}
	// Approvals: a new mini programme joins, a changed APP is replaced, a deregistered one leaves.
	rec = ApplyApproval(Spec{FilingType: AddWebsite, Services: []Service{mini()}}, rec, "")
	changed := app()
	changed.AppIDs, changed.Changed = []AppID{{Platform: PlatformHarmony, ID: "com.example.hm"}}, true
	rec = ApplyApproval(Spec{FilingType: ChangeFiling, Services: []Service{changed}}, rec, "")
	if a, ok := rec.Service(roleApp); !ok || a.Changed || len(a.AppIDs) != 1 || a.AppIDs[0].Platform != PlatformHarmony {
		t.Fatalf("changed APP = %+v", a)
	}
	rec = ApplyApproval(Spec{FilingType: DeregisterWebsite, Services: []Service{app()}}, rec, "")
	if _, ok := rec.Service(roleApp); ok || len(rec.Services) != 2 {
		t.Fatalf("after 注销APP: %+v", rec.Services)
	}
}

// TestProvinces: every spelling of a province is its code; an order's province is checked.
func TestProvinces(t *testing.T) {
	for in, want := range map[string]string{"33": "33", "ZJ": "33", "zj": "33", "CN-ZJ": "33", "浙江": "33", "浙江省": "33",
		"Zhejiang": "33", "ＺＪ": "33", " 44 ": "44", "广西壮族自治区": "45", "Xinjiang": "65", "北京市": "11"} {
		if got, ok := ParseProvince(in); !ok || got != want {
			t.Errorf("ParseProvince(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "71", "台湾", "HK", "81", "00", "浙", "Zhe jiang"} {
		if got, ok := ParseProvince(bad); ok {
			t.Errorf("ParseProvince(%q) = %q, accepted", bad, got)
		}
	}
	if got, err := ParseProvinces("ZJ, 浙江,44,"); err != nil || !reflect.DeepEqual(got, []string{"33", "44"}) {
		t.Errorf("ParseProvinces = %v, %v", got, err)
	}
	if _, err := ParseProvinces("ZJ,Atlantis"); err == nil {
		t.Error("ParseProvinces accepted Atlantis")
	}
	s := Spec{FilingType: FirstFiling, Principal: person("张三", idA, "13812345678"), Services: []Service{website()}}
	if n := mustNormalize(t, Rules{}, s); n.Province != "" {
		t.Errorf("province = %q, want none", n.Province)
	}
	if n := mustNormalize(t, Rules{DefaultProvince: "11"}, s); n.Province != "11" {
		t.Errorf("default province = %q, want 11", n.Province)
	}
	s.Province = "Atlantis"
	wantInvalid(t, errOf(Rules{}.Normalize(s)), "spec.province", ReasonInvalidProvince)
}

// TestHKMacaoTailByProvince: a HK/Macau permit holder types the tail of the identity card on the
// permit's back where the province's rule says so (Zhejiang by default, CONFIGURABLE), the
// permit's own elsewhere; a full-width 567（8） on the order is the same card.
func TestHKMacaoTailByProvince(t *testing.T) {
	holder := func(back string) *Person {
		return &Person{Name: "陈大文", IDType: iddoc.HKMacaoPermit, IDNumber: "H01234567", Phone: "13812345678", HKMacaoIDNumber: back}
	}
	spec := func(province, back string) Spec {
		return Spec{FilingType: FirstFiling, Principal: holder(back), Province: province,
			Services: []Service{{Kind: KindWebsite, Domain: "a.cn", Person: holder(back)}}}
	}
	tests := []struct {
		name     string
		rules    Rules
		spec     Spec
		tail     string // "" for an error
		errField string
	}{
		{"Zhejiang: the identity card's tail", Rules{}, spec("ZJ", "Ａ００４５６７（８）"), "567(8)", ""},
		{"Zhejiang by code", Rules{}, spec("33", "A004567(8)"), "567(8)", ""},
		{"Zhejiang, a Macau card", Rules{}, spec("浙江", "1234567(8)"), "567(8)", ""},
		{"elsewhere: the permit's tail", Rules{}, spec("GD", "A004567(8)"), "234567", ""},
		{"no province: the permit's tail", Rules{}, spec("", "A004567(8)"), "234567", ""},
		{"no province, default Zhejiang", Rules{DefaultProvince: "33"}, spec("", "A004567(8)"), "567(8)", ""},
		{"configured: Guangdong too", Rules{BackIDTailProvinces: []string{"33", "44"}}, spec("GD", "A004567(8)"), "567(8)", ""},
		{"configured: none", Rules{BackIDTailProvinces: []string{}}, spec("ZJ", "A004567(8)"), "234567", ""},
		{"Zhejiang without the card", Rules{}, spec("ZJ", ""), "", "spec.principal.hk_macao_id_number"},
		{"elsewhere without the card", Rules{}, spec("GD", ""), "234567", ""},
		{"a card with a wrong check character", Rules{}, spec("ZJ", "A004567(9)"), "", "spec.principal.hk_macao_id_number"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tt.rules.Normalize(tt.spec)
			if tt.tail == "" {
				var de *errs.Error
				if !errors.As(err, &de) || de.Field != tt.errField {
					t.Fatalf("Normalize = %v, want an error at %s", err, tt.errField)
				}
				return
			}
			if err != nil {
				t.Fatalf("Normalize: %v", err)
			}
			v := tt.rules.Verifiers(n)
			if len(v) != 1 || !reflect.DeepEqual(v[0].IDTails, []string{tt.tail}) {
				t.Fatalf("verifiers = %+v, want one with tail %s", v, tt.tail)
			}
		})
	}
	// Only a HK/Macau permit holder has the card.
	s := spec("ZJ", "A004567(8)")
	s.Services[0].Person = &Person{Name: "李四", IDType: iddoc.ResidentIDCard, IDNumber: idB, Phone: "13912345678", HKMacaoIDNumber: "A004567(8)"}
	wantInvalid(t, errOf(Rules{}.Normalize(s)), "spec.services[0].person.hk_macao_id_number", iddoc.ReasonInvalidHKMacaoID)
}

// TestPlanSubmitTakesTheRecordsProvince: an order without a province is reviewed by its record's
// administration, whose rule decides the tails; a holder without the card is then ORDER_INVALID.
func TestPlanSubmitTakesTheRecordsProvince(t *testing.T) {
	holder := &Person{Name: "陈大文", IDType: iddoc.HKMacaoPermit, IDNumber: "H01234567", Phone: "+8613812345678", HKMacaoIDNumber: "A004567(8)"}
	rec := Subject{ID: "sub_1", Province: ProvinceZhejiang, Holders: []string{"t"}, Principal: holder,
		Services: []Service{{Kind: KindApp, Name: "示例商城", AppIDs: app().AppIDs, Person: holder}}}
	records := func(string) (Subject, bool, error) { return rec, true, nil }
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	order := Order{ID: "ord_1", State: StateDraft, Spec: Spec{FilingType: DeregisterWebsite, SubjectID: "sub_1",
		Services: []Service{{Kind: KindApp, Name: "示例商城", AppIDs: app().AppIDs, Person: holder}}}}
	p, err := Rules{}.PlanSubmit(order, now, time.Hour, Access{Actor: Actor{Tenant: "t"}}, records)
	if err != nil || len(p.Verifiers) != 1 || !reflect.DeepEqual(p.Verifiers[0].IDTails, []string{"567(8)"}) ||
		!reflect.DeepEqual(p.Verifiers[0].Roles, []string{roleApp}) {
		t.Fatalf("plan = %+v, %v", p, err)
	}
	// A record approved before the card was kept: the order's holder without the card matches it,
	// but Zhejiang's rule needs the card.
	bare := *holder
	bare.HKMacaoIDNumber = ""
	rec.Principal, rec.Services[0].Person = &bare, &bare
	order.Spec.Services[0].Person = &bare
	_, err = Rules{}.PlanSubmit(order, now, time.Hour, Access{Actor: Actor{Tenant: "t"}}, records)
	if errs.Reason(err) != ReasonOrderInvalid {
		t.Fatalf("err = %v, want ORDER_INVALID", err)
	}
}

// TestStoredWebsitesReadAsServices: specs and records stored before services existed.
func TestStoredWebsitesReadAsServices(t *testing.T) {
	var s Spec
	if err := json.Unmarshal([]byte(`{"filing_type":1,"websites":[{"domain":"a.cn","person":{"name":"李四","id_type":1,"id_number":"x","phone":"+8613912345678"}}]}`), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Websites) != 0 || len(s.Services) != 1 || s.Services[0].Kind != KindWebsite || s.Services[0].Key() != roleWeb {
		t.Fatalf("spec = %+v", s)
	}
	var rec Subject
	if err := json.Unmarshal([]byte(`{"subject_id":"sub_1","websites":[{"domain":"a.cn"}],"services":[{"kind":2,"name":"示例商城"}]}`), &rec); err != nil {
		t.Fatal(err)
	}
	if _, ok := rec.Service(roleWeb); !ok || len(rec.Services) != 2 || rec.ID != "sub_1" {
		t.Fatalf("record = %+v", rec)
	}
	// Written back, they are services only.
	b, _ := json.Marshal(rec)
	var again map[string]any
	_ = json.Unmarshal(b, &again)
	if _, old := again["websites"]; old {
		t.Fatalf("record written with websites: %s", b)
	}
}
