package storetest

import (
	"reflect"
	"testing"

	"google.golang.org/protobuf/proto"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// The services of testServicesOfEveryKind: a Zhejiang subject whose principal holds a HK/Macau
// permit (and runs the website), and an APP whose person differs.
func hkPrincipal() *domain.Person {
	return &domain.Person{Name: "陈大文", IDType: iddoc.HKMacaoPermit, IDNumber: "H01234567", Phone: "13812345678",
		HKMacaoIDNumber: "Ａ００４５６７（８）"}
}

func shopApp() domain.Service {
	return domain.Service{Kind: domain.KindApp, Name: "示例商城", Person: &domain.Person{Name: "李四", IDType: iddoc.ResidentIDCard,
		IDNumber: idB, Phone: "13912345678"}, AppIDs: []domain.AppID{{Platform: domain.PlatformAndroid, ID: "com.example.shop"}}}
}

func miniProgram() domain.Service {
	return domain.Service{Kind: domain.KindMiniProgram, Name: "示例小程序", MiniPlatform: domain.MiniWeChat,
		MiniAppID: "wx0123456789abcdef", Person: &domain.Person{Name: "李四", IDType: iddoc.ResidentIDCard, IDNumber: idB, Phone: "13912345678"}}
}

// openSession is the OpenSession the order's latest submission queued.
func (e *env) openSession(t *testing.T, orderID string) *verificationv1.OpenSessionRequest {
	t.Helper()
	var last *verificationv1.OpenSessionRequest
	for _, r := range e.outbox(t) {
		if r.target != convert.TargetOpenSession {
			continue
		}
		var open verificationv1.OpenSessionRequest
		if err := proto.Unmarshal(r.payload, &open); err != nil {
			t.Fatal(err)
		}
		if open.GetOrderId() == orderID {
			last = &open
		}
	}
	if last == nil {
		t.Fatalf("no OpenSession for %s", orderID)
	}
	return last
}

// testServicesOfEveryKind: an order of a website and an APP is stored, answered, verified and
// approved into a record of services; later orders add a mini programme and deregister the APP
// (注销APP: its person verifies), all checked against the record the engine keeps; the Zhejiang
// principal verifies with the tail of the identity card on the permit's back.
func testServicesOfEveryKind(t *testing.T, e *env) {
	first := domain.Spec{FilingType: domain.FirstFiling, SubjectName: "示例公司", Principal: hkPrincipal(), Province: "浙江",
		Websites: []domain.Website{{Domain: "a.cn", Person: hkPrincipal()}}, Services: []domain.Service{shopApp()}}
	id := e.create(t, first)
	got := e.get(t, id).GetSpec()
	if got.GetProvince() != "33" || len(got.GetWebsites()) != 1 || len(got.GetServices()) != 1 ||
		got.GetServices()[0].GetKind() != filingv1.ServiceKind_SERVICE_KIND_APP ||
		got.GetServices()[0].GetAppPlatforms()[0].GetPackageOrBundleId() != "com.example.shop" ||
		got.GetPrincipal().GetHkMacaoIdNumber() == "" || got.GetPrincipal().GetHkMacaoIdNumber() == "A004567(8)" {
		t.Fatalf("stored spec answered as %v", got)
	}
	e.submit(t, id)
	open := e.openSession(t, id)
	type verifier struct {
		roles, tails []string
	}
	var vs []verifier
	for _, v := range open.GetVerifiers() {
		vs = append(vs, verifier{v.GetRoles(), v.GetIdTails()})
	}
	want := []verifier{{[]string{"principal", "website:a.cn"}, []string{"567(8)"}}, {[]string{"app:示例商城"}, []string{iddoc.Tail(idB)}}}
	if !reflect.DeepEqual(vs, want) {
		t.Fatalf("verifiers = %v, want %v", vs, want)
	}
	subject := e.approve(t, first)

	// ADD_WEBSITE of the APP again: already in the record; of a mini programme: its person verifies.
	again := e.create(t, domain.Spec{FilingType: domain.AddWebsite, SubjectID: subject, Services: []domain.Service{shopApp()}})
	wantReason(t, e.trySubmit(again), domain.ReasonWebsiteAlreadyInRecord)
	e.approve(t, domain.Spec{FilingType: domain.AddWebsite, SubjectID: subject, Services: []domain.Service{miniProgram()}})

	// 注销APP: the APP's person verifies, and the record no longer holds it.
	dereg := domain.Spec{FilingType: domain.DeregisterWebsite, SubjectID: subject, Services: []domain.Service{shopApp()}}
	did := e.create(t, dereg)
	if o := e.submit(t, did); len(o.GetVerifiers()) != 1 || !reflect.DeepEqual(o.GetVerifiers()[0].GetRoles(), []string{"app:示例商城"}) {
		t.Fatalf("deregister APP verifiers = %v", o.GetVerifiers())
	}
	e.approve(t, dereg)
	gone := e.create(t, dereg)
	wantReason(t, e.trySubmit(gone), domain.ReasonWebsiteNotInRecord)

	// The record keeps its province: a later order naming none is reviewed in Zhejiang, so the
	// principal (DEREGISTER_SUBJECT) types the identity card's tail again.
	ds := e.create(t, domain.Spec{FilingType: domain.DeregisterSubject, SubjectID: subject, Principal: hkPrincipal()})
	e.submit(t, ds)
	if tails := e.openSession(t, ds).GetVerifiers()[0].GetIdTails(); !reflect.DeepEqual(tails, []string{"567(8)"}) {
		t.Fatalf("deregister subject tails = %v", tails)
	}
	// The mini programme is still in the record: a CHANGE_ACCESS naming it passes straight to review.
	ca := e.create(t, domain.Spec{FilingType: domain.ChangeAccess, SubjectID: subject, Services: []domain.Service{miniProgram()}})
	if o := e.submit(t, ca); o.GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW {
		t.Fatalf("change access = %v", o.GetState())
	}
}
