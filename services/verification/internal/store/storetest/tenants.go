package storetest

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// tenantCtx is a public call of tenant's portal.
func tenantCtx(tenant string) context.Context {
	return rpc.WithCaller(context.Background(), rpc.Caller{ID: "apikey:" + tenant, Tenant: tenant})
}

// openFor opens a session of order for tenant with the given verifiers.
func (e *env) openFor(tenant, order string, sub int32, vs ...domain.VerifierSpec) {
	e.t.Helper()
	req, spec := openReq(order, sub, T0.Add(24*time.Hour), vs...)
	req.Tenant, spec.Tenant = tenant, tenant
	if _, err := e.Store.OpenSession(context.Background(), req, spec); err != nil {
		e.t.Fatalf("open session: %v", err)
	}
}

// testTenantsSeeOnlyTheirChallenges: a second tenant's Verify and ResendCode of the first's phone
// answer as for an unknown phone and count nothing; its status read is an unknown order's; the
// owner and a cross-tenant caller see the session.
func testTenantsSeeOnlyTheirChallenges(e *env) {
	t, s := e.t, e.Store
	e.openFor("t1", "o1", 1, vA())
	t2 := tenantCtx("t2")

	if _, err := s.Verify(t2, domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA}); !isNotMatched(err) {
		t.Fatalf("other tenant's verify with the right code = %v, want the uniform mismatch", err)
	}
	if _, err := s.ResendByPhone(t2, &pb.ResendCodeRequest{RequestId: "r2"}, phoneA, tailA); !isNotMatched(err) {
		t.Fatalf("other tenant's resend = %v, want the uniform mismatch", err)
	}
	_, err := s.Status(t2, "o1")
	_, unknown := s.Status(t2, "no-such-order")
	if errs.Reason(err) != domain.ReasonSessionNotFound || err.Error() != unknown.Error() {
		t.Fatalf("other tenant's status = %v, want exactly %v", err, unknown)
	}
	if _, err := s.Status(context.Background(), "o1"); errs.Reason(err) != domain.ReasonSessionNotFound {
		t.Fatalf("the development tenant's status of t1's order = %v", err)
	}
	cross := rpc.WithCaller(context.Background(), rpc.Caller{ID: "apikey:authority", Tenant: "authority", CrossTenant: true})
	if st, err := s.Status(cross, "o1"); err != nil || st.GetVerifiers()[0].GetFailedAttempts() != 0 {
		t.Fatalf("cross-tenant status = %v, %v: the other tenant's checks must count nothing", st, err)
	}
	r, err := s.Verify(tenantCtx("t1"), domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("owner's verify = %v, %v", r, err)
	}
	if st, err := s.Status(tenantCtx("t1"), "o1"); err != nil || st.GetState() != pb.SessionState_SESSION_STATE_PASSED {
		t.Fatalf("owner's status = %v, %v", st, err)
	}
}

// testCrossTenantVerify: the authority's portal checks any tenant's challenge.
func testCrossTenantVerify(e *env) {
	t, s := e.t, e.Store
	e.openFor("t1", "o1", 1, vA())
	cross := rpc.WithCaller(context.Background(), rpc.Caller{ID: "apikey:authority", Tenant: "authority", CrossTenant: true})
	r, err := s.Verify(cross, domain.VerifyInput{Phone: phoneA, Code: e.lastCode(phoneA), Tail: tailA})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("cross-tenant verify = %v, %v", r, err)
	}
}

// testResendRequestIDIsNoOracle: a request id of an accepted resend, reused with another ID tail, is
// a new request: the wrong tail counts a failure like any mismatch instead of answering
// REQUEST_ID_REUSED for free; the same (phone, tail) replays the answer; another tenant's reuse of
// the id is its own request.
func testResendRequestIDIsNoOracle(e *env) {
	t, s, clk := e.t, e.Store, e.clk
	e.open(s, "o1", 1, T0.Add(24*time.Hour), vA())
	clk.Advance(time.Minute)
	ctx := context.Background()
	first, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "r1"}, phoneA, tailA)
	if err != nil {
		t.Fatalf("resend = %v", err)
	}
	if _, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "r1"}, phoneA, "000000"); !isNotMatched(err) {
		t.Fatalf("the id with a wrong tail = %v, want the uniform mismatch", err)
	}
	if v := e.status("o1").GetVerifiers()[0]; v.GetFailedAttempts() != 1 {
		t.Fatalf("the wrong tail counted %d failures, want 1", v.GetFailedAttempts())
	}
	again, err := s.ResendByPhone(ctx, &pb.ResendCodeRequest{RequestId: "r1"}, phoneA, tailA)
	if err != nil || !proto.Equal(again, first) || len(e.sent(phoneA)) != 2 {
		t.Fatalf("replay = %v, %v; %d codes sent, want the first answer and no new code", again, err, len(e.sent(phoneA)))
	}
	if _, err := s.ResendByPhone(tenantCtx("t2"), &pb.ResendCodeRequest{RequestId: "r1"}, phoneA, tailA); !isNotMatched(err) {
		t.Fatalf("another tenant's reuse of the id = %v, want its own (uniform) answer", err)
	}
}
