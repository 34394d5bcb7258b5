package grpcapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// TestForeignPhoneAnsweredAsMalformed: with the default country list a valid Hong Kong mobile gets,
// from Verify and from ResendCode, exactly the answer of a malformed number (code, field, reason,
// message): no new answer that an outsider could tell apart.
func TestForeignPhoneAnsweredAsMalformed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	answer := func(ph string) [2]string {
		_, verr := e.public.Verify(ctx, &pb.VerifyRequest{Phone: ph, Code: "123456", IdTail: "12345X"})
		_, rerr := e.public.ResendCode(ctx, &pb.ResendCodeRequest{Phone: ph, IdTail: "12345X"})
		var out [2]string
		for i, err := range []error{verr, rerr} {
			s := status.Convert(err)
			out[i] = strings.Join([]string{s.Code().String(), rpc.Field(err), rpc.Reason(err), s.Message()}, " | ")
		}
		return out
	}
	malformed, foreign := answer("12"), answer("+852 5123 4567")
	if foreign != malformed || !strings.Contains(malformed[0], phone.ReasonInvalidPhone) {
		t.Fatalf("foreign number: %q, malformed number: %q; want the same INVALID_PHONE answer", foreign, malformed)
	}
	// A mainland number with no challenge is the uniform mismatch, as before.
	_, err := e.public.Verify(ctx, &pb.VerifyRequest{Phone: "13812345678", Code: "123456", IdTail: "12345X"})
	if status.Code(err) != codes.NotFound || rpc.Reason(err) != domain.ReasonNotMatched {
		t.Fatalf("unknown mainland phone: %v", err)
	}
}

func TestInternalRequestLimits(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	_, err := e.internal.ResendVerifierCode(ctx, &pb.ResendVerifierCodeRequest{OrderId: "o1",
		VerifierId: strings.Repeat("v", domain.MaxVerifierIDLength+1)})
	if status.Code(err) != codes.InvalidArgument || rpc.Reason(err) != domain.ReasonInvalidVerifierID || rpc.Field(err) != "verifier_id" {
		t.Fatalf("long verifier id: %v", err)
	}
	_, err = e.internal.OpenSession(ctx, &pb.OpenSessionRequest{OrderId: "o1", Submission: 1, DeadlineAt: timestamppb.New(start.Add(time.Hour)),
		Verifiers: []*pb.VerifierSpec{{Phone: "+8613812345678", Roles: []string{strings.Repeat("r", domain.MaxRoleLength+1)},
			IdTails: []string{"12345X"}}}})
	if status.Code(err) != codes.InvalidArgument || rpc.Reason(err) != domain.ReasonInvalidRole {
		t.Fatalf("long role: %v", err)
	}
}
