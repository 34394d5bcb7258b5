package grpcapi_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/verification/internal/app"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
	"github.com/icpverify/icpverify/services/verification/internal/grpcapi"
)

// Through real gRPC with API-key portal auth: two API keys are two tenants ("a" and "b").

const (
	victim = "+8613812345678"
	tail   = "12345X"
)

type tenantEnv struct {
	pool     *pgxpool.Pool
	clk      *clock.Fake
	public   pb.VerificationServiceClient
	internal pb.VerificationInternalServiceClient
	opened   int
}

// newTenantEnv serves verification on PostgreSQL behind API keys key-a (tenant a) and key-b (tenant
// b); the internal API on its own listener. maxMismatched is --max-mismatched-phones-per-caller.
func newTenantEnv(t *testing.T, maxMismatched int) *tenantEnv {
	t.Helper()
	pool, clk, hasher, st := newUses(t)
	st.Mismatches = app.NewMismatchThrottle(clk, hasher, maxMismatched)

	srv := rpctest.ServeTenants(t, []string{"a", "b"}, func(s *rpc.Server) {
		grpcapi.Register(s.Public(), s.Internal(), &grpcapi.Public{Store: st}, &grpcapi.Internal{Store: st})
	})
	return &tenantEnv{pool: pool, clk: clk, public: pb.NewVerificationServiceClient(srv.Public),
		internal: pb.NewVerificationInternalServiceClient(srv.Internal)}
}

// as is a call of tenant's portal (its API key).
func as(tenant string) context.Context { return rpctest.As(context.Background(), tenant) }

// open opens a session of order's submission for tenant with the victim's phone and returns its state.
func (e *tenantEnv) open(t *testing.T, tenant, order string, sub int32) pb.SessionState {
	t.Helper()
	resp, err := e.internal.OpenSession(context.Background(), &pb.OpenSessionRequest{
		RequestId: fmt.Sprintf("filing:open-session:%s:%d", order, sub), OrderId: order, Submission: sub, Tenant: tenant,
		DeadlineAt: timestamppb.New(e.clk.Now().Add(24 * time.Hour)),
		Verifiers:  []*pb.VerifierSpec{{Phone: victim, Roles: []string{"PRINCIPAL"}, IdTails: []string{tail}}},
	})
	if err != nil {
		t.Fatalf("open %s/%d: %v", order, sub, err)
	}
	e.opened++
	return resp.GetStatus().GetState()
}

// outboxRows returns the payloads queued for target, oldest first.
func (e *tenantEnv) outboxRows(t *testing.T, target string) [][]byte {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT payload FROM outbox WHERE target = $1 ORDER BY id`, target)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out [][]byte
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func (e *tenantEnv) returns(t *testing.T) []*filingv1.ReturnOrderRequest {
	t.Helper()
	var out []*filingv1.ReturnOrderRequest
	for _, b := range e.outboxRows(t, convert.TargetReturnOrder) {
		m := &filingv1.ReturnOrderRequest{}
		if err := proto.Unmarshal(b, m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

func (e *tenantEnv) lastCode(t *testing.T) string {
	t.Helper()
	env := &env{pool: e.pool}
	return env.code(t, victim)
}

func (e *tenantEnv) countedFailures(t *testing.T) int {
	t.Helper()
	var n int
	if err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM phone_failures`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// answer is an error as a caller sees it: code, reason, field, message.
func answer(err error) string {
	s := status.Convert(err)
	return strings.Join([]string{s.Code().String(), rpc.Reason(err), rpc.Field(err), s.Message()}, " | ")
}

// TestSecondTenantSeesNothing: tenant b, with the victim's right code and ID tail, gets from Verify
// and ResendCode exactly the answers of an unknown phone, and from GetVerificationStatus exactly
// the answer of an unknown order; its calls count nothing on tenant a's verifier (the status tells a
// stranger nothing, and the owner sees no trace).
func TestSecondTenantSeesNothing(t *testing.T) {
	t.Parallel()
	e := newTenantEnv(t, 20)
	e.open(t, "a", "o1", 1)
	code := e.lastCode(t)
	unknownPhone := "+8613700000000"

	_, verr := e.public.Verify(as("b"), &pb.VerifyRequest{Phone: victim, Code: code, IdTail: tail})
	_, vunknown := e.public.Verify(as("b"), &pb.VerifyRequest{Phone: unknownPhone, Code: code, IdTail: tail})
	if answer(verr) != answer(vunknown) || status.Code(verr) != codes.NotFound {
		t.Fatalf("tenant b's verify = %q, unknown phone = %q: want the same uniform NotFound", answer(verr), answer(vunknown))
	}
	_, rerr := e.public.ResendCode(as("b"), &pb.ResendCodeRequest{RequestId: "rb1", Phone: victim, IdTail: tail})
	_, runknown := e.public.ResendCode(as("b"), &pb.ResendCodeRequest{RequestId: "rb2", Phone: unknownPhone, IdTail: tail})
	if answer(rerr) != answer(runknown) || status.Code(rerr) != codes.NotFound {
		t.Fatalf("tenant b's resend = %q, unknown phone = %q", answer(rerr), answer(runknown))
	}
	_, serr := e.public.GetVerificationStatus(as("b"), &pb.GetVerificationStatusRequest{OrderId: "o1"})
	_, sunknown := e.public.GetVerificationStatus(as("b"), &pb.GetVerificationStatusRequest{OrderId: "o-unknown"})
	if answer(serr) != answer(sunknown) || status.Code(serr) != codes.NotFound {
		t.Fatalf("tenant b's status = %q, unknown order = %q", answer(serr), answer(sunknown))
	}
	// The owner sees its order untouched by b's tries (no failure counted, nothing resent), and passes.
	st, err := e.public.GetVerificationStatus(as("a"), &pb.GetVerificationStatusRequest{OrderId: "o1"})
	if err != nil || st.GetStatus().GetVerifiers()[0].GetFailedAttempts() != 0 || st.GetStatus().GetVerifiers()[0].GetResendsUsed() != 0 ||
		e.countedFailures(t) != 0 {
		t.Fatalf("owner's status = %v, %v; counted failures %d", st, err, e.countedFailures(t))
	}
	r, err := e.public.Verify(as("a"), &pb.VerifyRequest{Phone: victim, Code: code, IdTail: tail})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("owner's verify = %v, %v", r, err)
	}
}

// TestGuessesAcrossOrdersStayWithinBudget: the H1 attack. The attacker opens 3 orders naming the
// victim's phone (filing's cap per phone), guesses until the orders are returned, resubmits them and
// guesses again, from both tenants. At most B guesses are ever compared in the window; then every
// order is returned with the phone's lock and the phone refuses checks and new sessions until it ends.
func TestGuessesAcrossOrdersStayWithinBudget(t *testing.T) {
	t.Parallel()
	e := newTenantEnv(t, 0)
	budget := domain.DefaultLimits.PhoneFailureBudget
	compared, locked := 0, false
	var lockedErr error
	for sub := int32(1); sub <= 10 && !locked; sub++ {
		for _, o := range []string{"o1", "o2", "o3"} {
			if st := e.open(t, "a", o, sub); st != pb.SessionState_SESSION_STATE_OPEN {
				locked = true // opened nothing: the phone is locked
			}
		}
		for range 20 {
			// Tenant b's guesses compare with nothing it can see.
			if _, err := e.public.Verify(as("b"), &pb.VerifyRequest{Phone: victim, Code: "999999", IdTail: tail}); status.Code(err) != codes.NotFound &&
				rpc.Reason(err) != domain.ReasonPhoneLocked {
				t.Fatalf("tenant b's guess = %v", err)
			}
			st, err := e.public.GetVerificationStatus(as("a"), &pb.GetVerificationStatusRequest{OrderId: "o3"})
			if err != nil {
				t.Fatal(err)
			}
			pending := st.GetStatus().GetState() == pb.SessionState_SESSION_STATE_OPEN
			_, err = e.public.Verify(as("a"), &pb.VerifyRequest{Phone: victim, Code: "999999", IdTail: tail})
			if rpc.Reason(err) == domain.ReasonPhoneLocked {
				locked, lockedErr = true, err
				break
			}
			if rpc.Reason(err) != domain.ReasonNotMatched {
				t.Fatalf("guess = %v", err)
			}
			if !pending {
				break // the orders were returned: resubmit
			}
			compared++
			e.clk.Advance(time.Minute)
		}
	}
	if !locked || compared != budget || e.countedFailures(t) != budget {
		t.Fatalf("locked %v after %d compared guesses, %d counted; want a lock after exactly %d", locked, compared, e.countedFailures(t), budget)
	}
	// Every order's last submission was returned with the phone's lock and its time.
	last := map[string]*filingv1.ReturnOrderRequest{}
	for _, r := range e.returns(t) {
		if p := last[r.GetOrderId()]; p == nil || r.GetSubmission() > p.GetSubmission() {
			last[r.GetOrderId()] = r
		}
	}
	var until time.Time
	for _, o := range []string{"o1", "o2", "o3"} {
		r := last[o]
		l := r.GetPhoneLocks()
		if r.GetReason() != filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS || len(l) != 1 || l[0].GetPhone() != victim {
			t.Fatalf("return %v: want TOO_MANY_FAILED_ATTEMPTS with the victim's lock", r)
		}
		until = l[0].GetUntil().AsTime()
	}
	if until.IsZero() || !until.After(e.clk.Now()) {
		t.Fatalf("lock until %v", until)
	}
	if lockedErr == nil {
		_, lockedErr = e.public.Verify(as("a"), &pb.VerifyRequest{Phone: victim, Code: e.lastCode(t), IdTail: tail})
	}
	s := status.Convert(lockedErr)
	if s.Code() != codes.FailedPrecondition || !strings.Contains(s.Message(), until.UTC().Format(time.RFC3339)) {
		t.Fatalf("check of the locked phone = %v, want FailedPrecondition PHONE_LOCKED until %s", lockedErr, until)
	}
	if st := e.open(t, "a", "o9", 1); st != pb.SessionState_SESSION_STATE_FAILED {
		t.Fatalf("a new session for the locked phone = %v, want FAILED (nothing opened)", st)
	}
}

// TestConcurrentMismatchesCountExactlyTheBudget: with B-1 counted, many mismatches at once count
// exactly one more: the budget, not more.
func TestConcurrentMismatchesCountExactlyTheBudget(t *testing.T) {
	t.Parallel()
	e := newTenantEnv(t, 0)
	budget := domain.DefaultLimits.PhoneFailureBudget
	for sub := int32(1); e.countedFailures(t) < budget-1; sub++ {
		e.open(t, "a", "o1", sub)
		for range min(4, budget-1-e.countedFailures(t)) {
			if _, err := e.public.Verify(as("a"), &pb.VerifyRequest{Phone: victim, Code: "999999", IdTail: tail}); rpc.Reason(err) != domain.ReasonNotMatched {
				t.Fatalf("guess = %v", err)
			}
		}
	}
	e.open(t, "a", "o2", 1)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			_, err := e.public.Verify(as("a"), &pb.VerifyRequest{Phone: victim, Code: "999999", IdTail: tail})
			if r := rpc.Reason(err); r != domain.ReasonNotMatched && r != domain.ReasonPhoneLocked {
				t.Errorf("racing guess = %v", err)
			}
		})
	}
	wg.Wait()
	if n := e.countedFailures(t); n != budget {
		t.Fatalf("%d failures counted, want exactly %d", n, budget)
	}
}

// TestMismatchedPhonesThrottle: a caller that mismatched on the limit of distinct phones is refused
// (ResourceExhausted with RetryInfo) before its check of a further phone touches any challenge.
func TestMismatchedPhonesThrottle(t *testing.T) {
	t.Parallel()
	e := newTenantEnv(t, 3)
	e.open(t, "a", "o1", 1)
	for i := range 3 {
		ph := fmt.Sprintf("+861370000000%d", i)
		if _, err := e.public.Verify(as("a"), &pb.VerifyRequest{Phone: ph, Code: "999999", IdTail: tail}); rpc.Reason(err) != domain.ReasonNotMatched {
			t.Fatalf("mismatch %d = %v", i, err)
		}
	}
	_, err := e.public.Verify(as("a"), &pb.VerifyRequest{Phone: victim, Code: "999999", IdTail: tail})
	if status.Code(err) != codes.ResourceExhausted || rpc.Reason(err) != domain.ReasonTooManyMismatchedPhones || rpc.RetryDelay(err) <= 0 {
		t.Fatalf("a 4th phone = %v, want ResourceExhausted TOO_MANY_MISMATCHED_PHONES with a retry delay", err)
	}
	_, err = e.public.ResendCode(as("a"), &pb.ResendCodeRequest{RequestId: "r1", Phone: victim, IdTail: "000000"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("resend of a 4th phone = %v", err)
	}
	st, err := e.public.GetVerificationStatus(as("a"), &pb.GetVerificationStatusRequest{OrderId: "o1"})
	if err != nil || st.GetStatus().GetVerifiers()[0].GetFailedAttempts() != 0 || e.countedFailures(t) != 0 {
		t.Fatalf("status after the throttled checks = %v, %v: nothing may have counted", st, err)
	}
	// Another caller has its own allowance; after the hour the first has too.
	if _, err := e.public.Verify(as("b"), &pb.VerifyRequest{Phone: victim, Code: "999999", IdTail: tail}); rpc.Reason(err) != domain.ReasonNotMatched {
		t.Fatalf("tenant b = %v", err)
	}
	e.clk.Advance(time.Hour)
	if _, err := e.public.Verify(as("a"), &pb.VerifyRequest{Phone: victim, Code: "999999", IdTail: tail}); rpc.Reason(err) != domain.ReasonNotMatched {
		t.Fatalf("after the hour = %v", err)
	}
}
