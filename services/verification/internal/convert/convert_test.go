package convert

import (
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
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
