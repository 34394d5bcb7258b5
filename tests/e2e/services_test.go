package e2e

import (
	"testing"
	"time"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// A Zhejiang FIRST_FILING of a website and an APP whose persons differ: the principal, a HK/Macau
// permit holder who also runs the website, verifies once with the tail of the Hong Kong identity
// card on the permit's back typed in full width, 567（8） (the permit's own tail is a mismatch
// there); the APP's person verifies with their own card, and the order goes to review.
func TestWebsiteAndAppInZhejiang(t *testing.T) {
	s := startSuite(t, options{})
	hk := &filingv1.Person{Name: "陈大文", IdType: filingv1.IdDocumentType_ID_DOCUMENT_TYPE_HK_MACAO_PERMIT, IdNumber: "H01234567",
		HkMacaoIdNumber: "A004567(8)", Phone: "13812345678"}
	idMu.Lock()
	idsUsed = append(idsUsed, hk.IdNumber, "A004567")
	idMu.Unlock()
	appPerson := person("李四", "13987654321")
	spec := &filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: "杭州示例科技有限公司",
		SubjectType: filingv1.SubjectType_SUBJECT_TYPE_ORGANIZATION, Principal: hk, Province: "浙江",
		Services: []*filingv1.Service{
			{Kind: filingv1.ServiceKind_SERVICE_KIND_WEBSITE, Domain: "example-zj.cn", Name: "示例", Person: hk},
			{Kind: filingv1.ServiceKind_SERVICE_KIND_APP, Name: "示例商城", Person: appPerson, AppPlatforms: []*filingv1.AppPlatformId{
				{Platform: filingv1.AppPlatform_APP_PLATFORM_ANDROID, PackageOrBundleId: "com.example.shop"},
				{Platform: filingv1.AppPlatform_APP_PLATFORM_IOS, PackageOrBundleId: "com.example.shop"}}},
		}}
	order := s.submit(spec)
	if order.State != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION || len(order.Verifiers) != 2 ||
		order.Spec.Province != "33" || len(order.Spec.Websites) != 1 || len(order.Spec.Services) != 1 {
		t.Fatalf("submitted order: %v", order)
	}
	if roles := order.Verifiers[1].Roles; len(roles) != 1 || roles[0] != "app:示例商城" {
		t.Fatalf("APP verifier roles = %v", roles)
	}
	codes := s.waitCodes(1, phoneA, phoneB)

	// In Zhejiang the permit's own tail is not what the administration checks.
	_, err := s.verify(phoneA, codes[phoneA], "234567")
	requireMismatch(t, err)
	resp, err := s.verify("138 1234 5678", codes[phoneA], "567（8）")
	if err != nil || resp.Result != verificationv1.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS {
		t.Fatalf("principal's check with the full-width card tail: %v %v", resp, err)
	}
	resp, err = s.verify(phoneB, codes[phoneB], tailOf(appPerson))
	if err != nil || resp.Result != verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("APP person's check: %v %v", resp, err)
	}
	s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
	if got := len(distinctMessages(s.gateway.Posts())); got != 2 {
		t.Errorf("gateway received %d distinct messages, want 2 (one per distinct phone)", got)
	}
}
