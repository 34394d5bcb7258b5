package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/grpcapi"
	"github.com/icpverify/icpverify/services/verification/internal/store/storetest"
)

// newLinkEnv is newTenantEnv with --verify-link-base set, so the SMS carry links.
func newLinkEnv(t *testing.T) *tenantEnv {
	t.Helper()
	pool, clk, _, st := newUses(t)
	st.LinkBase = storetest.LinkBase
	srv := rpctest.ServeTenants(t, []string{"a", "b"}, func(s *rpc.Server) {
		grpcapi.Register(s.Public(), s.Internal(), &grpcapi.Public{Store: st}, &grpcapi.Internal{Store: st})
	})
	return &tenantEnv{pool: pool, clk: clk, public: pb.NewVerificationServiceClient(srv.Public),
		internal: pb.NewVerificationInternalServiceClient(srv.Internal)}
}

// lastSMS is the newest SendMessage queued for the victim of order.
func (e *tenantEnv) lastSMS(t *testing.T, order string) *smsv1.SendMessageRequest {
	t.Helper()
	rows, err := outbox.PGQueue{Pool: e.pool, Keys: storetest.SealKeys()}.Pending(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var last *smsv1.SendMessageRequest
	for _, r := range rows {
		m := &smsv1.SendMessageRequest{}
		if r.Target == convert.TargetSendMessage && proto.Unmarshal(r.Payload, m) == nil && m.GetOrderId() == order {
			last = m
		}
	}
	if last == nil {
		t.Fatalf("no SMS for %s", order)
	}
	return last
}

func (e *tenantEnv) token(t *testing.T, order string) string {
	t.Helper()
	token, ok := strings.CutPrefix(e.lastSMS(t, order).GetParams()["link"], storetest.LinkBase+"/")
	if !ok {
		t.Fatalf("SMS of %s has no link: %v", order, e.lastSMS(t, order).GetParams())
	}
	return token
}

// sameStatus fails unless a and b are the same answer: code, message and details.
func sameStatus(t *testing.T, what string, a, b error) {
	t.Helper()
	sa, sb := status.Convert(a), status.Convert(b)
	if a == nil || !proto.Equal(sa.Proto(), sb.Proto()) {
		t.Fatalf("%s: %v, want exactly %v", what, a, b)
	}
}

// Another tenant's portal key reads another tenant's link exactly as an unknown link, and cannot
// verify through it; the owner can.
func TestGetLinkIsTheTenants(t *testing.T) {
	t.Parallel()
	e := newLinkEnv(t)
	e.open(t, "a", "o1", 1)
	token := e.token(t, "o1")

	r, err := e.public.GetLink(as("a"), &pb.GetLinkRequest{Token: token})
	if err != nil || r.GetPhoneMasked() != "138****5678" || r.GetState() != pb.ChallengeState_CHALLENGE_STATE_PENDING {
		t.Fatalf("owner's GetLink = %v, %v", r, err)
	}
	_, other := e.public.GetLink(as("b"), &pb.GetLinkRequest{Token: token})
	_, unknown := e.public.GetLink(as("b"), &pb.GetLinkRequest{Token: "AAAAAAAAAAAAAAAAAAAAAA"})
	if status.Code(unknown) != codes.NotFound || !rpc.HasReason(unknown, pb.ErrorReason_ERROR_REASON_LINK_NOT_FOUND) {
		t.Fatalf("unknown link = %v", unknown)
	}
	sameStatus(t, "tenant b reads tenant a's link", other, unknown)

	code := e.lastCode(t)
	_, viaOther := e.public.Verify(as("b"), &pb.VerifyRequest{Code: code, IdTail: tail, LinkToken: token})
	_, wrong := e.public.Verify(as("b"), &pb.VerifyRequest{Phone: victim, Code: "000000", IdTail: tail})
	sameStatus(t, "tenant b verifies through tenant a's link", viaOther, wrong)

	resp, err := e.public.Verify(as("a"), &pb.VerifyRequest{Code: code, IdTail: tail, LinkToken: token})
	if err != nil || resp.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED || resp.GetOrderId() != "o1" {
		t.Fatalf("owner's verify through the link = %v, %v", resp, err)
	}
	_, dead := e.public.GetLink(as("a"), &pb.GetLinkRequest{Token: token})
	sameStatus(t, "a passed link", dead, unknown)

	for _, bad := range []string{"", "short", strings.Repeat("A", 21) + "*"} {
		_, err := e.public.GetLink(as("a"), &pb.GetLinkRequest{Token: bad})
		if status.Code(err) != codes.InvalidArgument || !rpc.HasReason(err, pb.ErrorReason_ERROR_REASON_INVALID_LINK_TOKEN) {
			t.Errorf("GetLink(%q) = %v", bad, err)
		}
		if bad == "" {
			continue
		}
		_, err = e.public.Verify(as("a"), &pb.VerifyRequest{Code: code, IdTail: tail, LinkToken: bad})
		if status.Code(err) != codes.InvalidArgument || !rpc.HasReason(err, pb.ErrorReason_ERROR_REASON_INVALID_LINK_TOKEN) {
			t.Errorf("Verify with link_token %q = %v", bad, err)
		}
	}
	// Without a link the phone is still required.
	if _, err := e.public.Verify(as("a"), &pb.VerifyRequest{Code: code, IdTail: tail}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("Verify without phone or link = %v", err)
	}
}

// A link compares the entry with its own challenge only: the right code of another of the phone's
// challenges through it gets the uniform answer of a wrong code, and counts like one.
func TestVerifyThroughAnotherChallengesLink(t *testing.T) {
	t.Parallel()
	e := newLinkEnv(t)
	e.open(t, "a", "o1", 1)
	link1 := e.token(t, "o1")
	e.open(t, "a", "o2", 1)
	code2 := e.lastCode(t)

	_, err := e.public.Verify(as("a"), &pb.VerifyRequest{Code: code2, IdTail: tail, LinkToken: link1})
	_, wrong := e.public.Verify(as("a"), &pb.VerifyRequest{Phone: victim, Code: "000000", IdTail: tail})
	sameStatus(t, "o2's code through o1's link", err, wrong)
	if n := e.countedFailures(t); n != 2 {
		t.Fatalf("counted failures = %d, want 2: the link's mismatch counts as a wrong code does", n)
	}
	for _, order := range []string{"o1", "o2"} {
		st, err := e.public.GetVerificationStatus(as("a"), &pb.GetVerificationStatusRequest{OrderId: order})
		if err != nil || st.GetStatus().GetVerifiers()[0].GetFailedAttempts() != 2 {
			t.Fatalf("%s status = %v, %v: want 2 failures", order, st, err)
		}
	}
	resp, err := e.public.Verify(as("a"), &pb.VerifyRequest{Phone: victim, Code: code2, IdTail: tail, LinkToken: e.token(t, "o2")})
	if err != nil || resp.GetOrderId() != "o2" {
		t.Fatalf("o2 through its own link = %v, %v", resp, err)
	}
}
