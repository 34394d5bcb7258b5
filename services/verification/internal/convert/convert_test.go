package convert

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

func TestRedactOpenRequest(t *testing.T) {
	keys, _ := domain.ParseKeys("k1:" + strings.Repeat("01", 32))
	h, _ := domain.NewHasher(keys)
	req := &pb.OpenSessionRequest{RequestId: "r", OrderId: "o", Verifiers: []*pb.VerifierSpec{
		{Phone: "+8613812345678", IdTails: []string{"12345X", "654321"}}}}
	red := RedactOpenRequest(req, h)
	if s := red.String(); strings.Contains(s, "13812345678") || strings.Contains(s, "12345X") || strings.Contains(s, "654321") {
		t.Fatalf("redacted request still holds personal data: %v", red)
	}
	if req.GetVerifiers()[0].GetPhone() != "+8613812345678" || red.GetOrderId() != "o" ||
		!proto.Equal(red, RedactOpenRequest(req, h)) {
		t.Fatalf("redaction must leave the request alone and be deterministic")
	}
}

// The domain's reasons are the contract's ErrorReason values (the domain imports no generated code,
// so this test holds the two together): every value has its constant, and no constant is extra.
func TestReasonsAreTheContracts(t *testing.T) {
	domainReasons := map[string]bool{
		domain.ReasonNotMatched: true, domain.ReasonSessionNotFound: true, domain.ReasonVerifierNotFound: true,
		domain.ReasonDeadlineNotReached: true, domain.ReasonResendLimit: true, domain.ReasonResendTooSoon: true,
		domain.ReasonVerifierNotPending: true, domain.ReasonStaleSubmission: true, domain.ReasonInvalidCode: true,
		domain.ReasonPhoneLocked: true, domain.ReasonTooManyMismatchedPhones: true,
		domain.ReasonTooManyVerifiers: true, domain.ReasonTooManyRoles: true, domain.ReasonInvalidRole: true,
		domain.ReasonTooManyTails: true, domain.ReasonInvalidVerifierID: true, domain.ReasonInvalidTenant: true,
		domain.ReasonMissingDeadline: true, domain.ReasonInvalidDeadline: true, domain.ReasonInvalidLocale: true,
		domain.ReasonNoVerifiers: true, domain.ReasonDuplicateVerifierPhone: true, domain.ReasonMissingIDTail: true,
		domain.ReasonMissingVerifierID: true, domain.ReasonInvalidMessageID: true, domain.ReasonInvalidDeliveryState: true,
		domain.ReasonInvalidDeliveryReason: true, domain.ReasonLinkNotFound: true, domain.ReasonInvalidLinkToken: true,
		// The checks every service shares.
		orderid.ReasonMissing: true, orderid.ReasonInvalid: true, orderid.ReasonInvalidSubmission: true,
		errs.Reason(idempotency.CheckRequestID(strings.Repeat("r", idempotency.MaxRequestIDLength+1))): true,
		errs.RequestIDReused.Reason: true, phone.ReasonInvalidPhone: true, phone.ReasonCountryNotAllowed: true,
		iddoc.ReasonInvalidTail: true, errs.ReasonTooManyItems: true,
	}
	values := pb.ErrorReason(0).Descriptor().Values()
	for i := 1; i < values.Len(); i++ {
		name := rpc.ReasonName(pb.ErrorReason(values.Get(i).Number()))
		if !domainReasons[name] {
			t.Errorf("contract reason %s has no domain constant", name)
		}
		delete(domainReasons, name)
	}
	for r := range domainReasons {
		t.Errorf("domain reason %s is not in the contract's ErrorReason", r)
	}
}
