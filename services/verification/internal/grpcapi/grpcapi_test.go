package grpcapi_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icpverify/icpverify/pkg/clock"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/verification/internal/app"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
	"github.com/icpverify/icpverify/services/verification/internal/grpcapi"
	"github.com/icpverify/icpverify/services/verification/internal/store"
	"github.com/icpverify/icpverify/services/verification/internal/store/storetest"
)

var start = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

type env struct {
	pool     *pgxpool.Pool
	clk      *clock.Fake
	public   pb.VerificationServiceClient
	internal pb.VerificationInternalServiceClient
}

func newEnv(t *testing.T) *env { return newEnvWith(t, &grpcapi.Public{}) }

// newEnvWith serves public (its Store is filled in) and the internal API on a real PostgreSQL store.
func newEnvWith(t *testing.T, public *grpcapi.Public) *env {
	t.Helper()
	pool, clk, _, st := newUses(t)
	public.Store = st
	conn := rpctest.Serve(t, func(srv *rpc.Server) {
		pb.RegisterVerificationServiceServer(srv.GRPC, public)
		pb.RegisterVerificationInternalServiceServer(srv.GRPC, &grpcapi.Internal{Store: st})
	})
	return &env{pool: pool, clk: clk, public: pb.NewVerificationServiceClient(conn), internal: pb.NewVerificationInternalServiceClient(conn)}
}

func (e *env) code(t *testing.T, phone string) string {
	t.Helper()
	rows, err := outbox.PGQueue{Pool: e.pool, Keys: storetest.SealKeys()}.Pending(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	code := ""
	for _, r := range rows {
		if r.Target != convert.TargetSendMessage {
			continue
		}
		m := &smsv1.SendMessageRequest{}
		if err := proto.Unmarshal(r.Payload, m); err != nil {
			t.Fatal(err)
		}
		if m.GetPhone() == phone {
			code = m.GetParams()["code"]
		}
	}
	if code == "" {
		t.Fatalf("no code for %s", phone)
	}
	return code
}

func (e *env) open(t *testing.T) {
	t.Helper()
	_, err := e.internal.OpenSession(context.Background(), &pb.OpenSessionRequest{
		RequestId: "filing:open-session:o1:1", OrderId: "o1", Submission: 1, DeadlineAt: timestamppb.New(start.Add(24 * time.Hour)),
		Verifiers: []*pb.VerifierSpec{
			{Phone: "+8613812345678", Roles: []string{"PRINCIPAL"}, IdTails: []string{"12345X"}},
			{Phone: "+8613912345678", Roles: []string{"WEBSITE"}, IdTails: []string{"654321"}},
		},
	})
	if err != nil {
		t.Fatalf("open session: %v", err)
	}
}

func TestVerifyUniformNotFound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open(t)
	ctx := context.Background()
	code := e.code(t, "+8613812345678")
	wrong := "000000"
	if code == wrong {
		wrong = "000001"
	}
	cases := []struct {
		name string
		req  *pb.VerifyRequest
	}{
		{"wrong code", &pb.VerifyRequest{Phone: "13812345678", Code: wrong, IdTail: "12345X"}},
		{"wrong tail", &pb.VerifyRequest{Phone: "138 1234 5678", Code: code, IdTail: "99999X"}},
		{"unknown phone", &pb.VerifyRequest{Phone: "13700000000", Code: code, IdTail: "12345X"}},
		{"code of another verifier", &pb.VerifyRequest{Phone: "13912345678", Code: code, IdTail: "654321"}},
	}
	var msgs []string
	for _, tc := range cases {
		_, err := e.public.Verify(ctx, tc.req)
		st := status.Convert(err)
		if st.Code() != codes.NotFound || rpc.Reason(err) != domain.ReasonNotMatched {
			t.Fatalf("%s: %v (reason %q)", tc.name, err, rpc.Reason(err))
		}
		if rpc.Field(err) != "" {
			t.Fatalf("%s: the answer names a field: %s", tc.name, rpc.Field(err))
		}
		msgs = append(msgs, st.Message())
	}
	for i, m := range msgs {
		if m != domain.NotMatchedMessage {
			t.Fatalf("%s: message %q differs", cases[i].name, m)
		}
	}
	// The right entry (lower-case x, national spelling) still passes: 3 failures < 5.
	r, err := e.public.Verify(ctx, &pb.VerifyRequest{Phone: "86-138-1234-5678", Code: code, IdTail: "12345x"})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS || r.GetOrderId() != "o1" {
		t.Fatalf("verify = %v, %v", r, err)
	}
	st, err := e.public.GetVerificationStatus(ctx, &pb.GetVerificationStatusRequest{OrderId: "o1"})
	if err != nil || st.GetStatus().GetVerifiers()[0].GetState() != pb.ChallengeState_CHALLENGE_STATE_PASSED ||
		st.GetStatus().GetVerifiers()[0].GetFailedAttempts() != 2 || st.GetStatus().GetVerifiers()[1].GetFailedAttempts() != 1 ||
		strings.Contains(st.String(), "13812345678") {
		t.Fatalf("status = %v, %v", st, err)
	}
	r, err = e.public.Verify(ctx, &pb.VerifyRequest{Phone: "13912345678", Code: e.code(t, "+8613912345678"), IdTail: "654321"})
	if err != nil || r.GetResult() != pb.VerifyResult_VERIFY_RESULT_ALL_PASSED || r.GetMessageZh() != domain.MessageAllZH {
		t.Fatalf("verify = %v, %v", r, err)
	}
}

func TestInvalidArguments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"5-digit code", func() error {
			_, err := e.public.Verify(ctx, &pb.VerifyRequest{Phone: "13812345678", Code: "12345", IdTail: "12345X"})
			return err
		}, "code"},
		{"bad phone", func() error {
			_, err := e.public.Verify(ctx, &pb.VerifyRequest{Phone: "12", Code: "123456", IdTail: "12345X"})
			return err
		}, "phone"},
		{"bad tail", func() error {
			_, err := e.public.Verify(ctx, &pb.VerifyRequest{Phone: "13812345678", Code: "123456", IdTail: "12"})
			return err
		}, "id_tail"},
		{"resend bad tail", func() error {
			_, err := e.public.ResendCode(ctx, &pb.ResendCodeRequest{Phone: "13812345678", IdTail: "1"})
			return err
		}, "id_tail"},
		{"open without verifiers", func() error {
			_, err := e.internal.OpenSession(ctx, &pb.OpenSessionRequest{OrderId: "o", Submission: 1, DeadlineAt: timestamppb.New(start.Add(time.Hour))})
			return err
		}, "verifiers"},
		{"close without submission", func() error {
			_, err := e.internal.CloseIfIncomplete(ctx, &pb.CloseIfIncompleteRequest{OrderId: "o"})
			return err
		}, "submission"},
	}
	for _, tc := range cases {
		err := tc.call()
		if status.Code(err) != codes.InvalidArgument || rpc.Field(err) != tc.field {
			t.Errorf("%s: %v (field %q), want InvalidArgument on %s", tc.name, err, rpc.Field(err), tc.field)
		}
	}
}

func TestResendAndCloseThroughGRPC(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.open(t)
	ctx := context.Background()
	old := e.code(t, "+8613812345678")

	_, err := e.public.ResendCode(ctx, &pb.ResendCodeRequest{RequestId: "r1", Phone: "13812345678", IdTail: "12345X"})
	if status.Code(err) != codes.ResourceExhausted || rpc.Reason(err) != domain.ReasonResendTooSoon || rpc.RetryDelay(err) != time.Minute {
		t.Fatalf("early resend = %v", err)
	}
	if _, err := e.public.ResendCode(ctx, &pb.ResendCodeRequest{RequestId: "r2", Phone: "13812345678", IdTail: "000000"}); rpc.Reason(err) != domain.ReasonNotMatched {
		t.Fatalf("resend wrong tail = %v", err)
	}
	e.clk.Advance(2 * time.Minute)
	r, err := e.public.ResendCode(ctx, &pb.ResendCodeRequest{RequestId: "r3", Phone: "13812345678", IdTail: "12345X"})
	if err != nil || r.GetResend().GetResendsLeft() != 1 || r.GetResend().GetOrderId() != "o1" {
		t.Fatalf("resend = %v, %v", r, err)
	}
	if _, err := e.internal.ResendVerifierCode(ctx, &pb.ResendVerifierCodeRequest{OrderId: "o1", VerifierId: "v7"}); status.Code(err) != codes.NotFound ||
		rpc.Reason(err) != domain.ReasonVerifierNotFound {
		t.Fatalf("unknown verifier = %v", err)
	}
	if fresh := e.code(t, "+8613812345678"); fresh == old {
		t.Fatalf("the deterministic source drew the same code twice")
	}
	if _, err := e.public.Verify(ctx, &pb.VerifyRequest{Phone: "13812345678", Code: old, IdTail: "12345X"}); rpc.Reason(err) != domain.ReasonNotMatched {
		t.Fatalf("old code after resend = %v", err)
	}
	// The wrong-tail resend and the old code each counted as a failure.
	if st, err := e.public.GetVerificationStatus(ctx, &pb.GetVerificationStatusRequest{OrderId: "o1"}); err != nil ||
		st.GetStatus().GetVerifiers()[0].GetFailedAttempts() != 2 {
		t.Fatalf("status = %v, %v", st, err)
	}
	closeReq := &pb.CloseIfIncompleteRequest{RequestId: "deadline:close:o1:1", OrderId: "o1", Submission: 1}
	if _, err := e.internal.CloseIfIncomplete(ctx, closeReq); status.Code(err) != codes.FailedPrecondition || rpc.Reason(err) != domain.ReasonDeadlineNotReached {
		t.Fatalf("early close = %v", err)
	}
	e.clk.Set(start.Add(24 * time.Hour))
	cr, err := e.internal.CloseIfIncomplete(ctx, closeReq)
	if err != nil || !cr.GetClosed() || cr.GetStatus().GetState() != pb.SessionState_SESSION_STATE_TIMED_OUT {
		t.Fatalf("close = %v, %v", cr, err)
	}
	if _, err := e.public.GetVerificationStatus(ctx, &pb.GetVerificationStatusRequest{OrderId: "nope"}); status.Code(err) != codes.NotFound ||
		rpc.Reason(err) != domain.ReasonSessionNotFound {
		t.Fatalf("status unknown = %v", err)
	}
	cs, err := e.internal.CancelSession(ctx, &pb.CancelSessionRequest{RequestId: "c", OrderId: "o1", Submission: 1})
	if err != nil || cs.GetStatus().GetState() != pb.SessionState_SESSION_STATE_TIMED_OUT {
		t.Fatalf("cancel timed-out = %v, %v", cs, err)
	}
}

// TestOpenSessionAfterDeadline: filing's OpenSession delivered after deadline_at is accepted as an
// already timed-out session (the order is returned at once), so the deadline sweeper's close finds it.
func TestOpenSessionAfterDeadline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	r, err := e.internal.OpenSession(ctx, &pb.OpenSessionRequest{RequestId: "filing:open-session:o:1", OrderId: "o", Submission: 1,
		DeadlineAt: timestamppb.New(start), Verifiers: []*pb.VerifierSpec{{Phone: "+8613812345678", IdTails: []string{"12345X"}}}})
	if err != nil || r.GetStatus().GetState() != pb.SessionState_SESSION_STATE_TIMED_OUT {
		t.Fatalf("late open = %v, %v", r, err)
	}
	cr, err := e.internal.CloseIfIncomplete(ctx, &pb.CloseIfIncompleteRequest{RequestId: "deadline:close:o:1", OrderId: "o", Submission: 1})
	if err != nil || !cr.GetClosed() {
		t.Fatalf("close = %v, %v", cr, err)
	}
}

// TestMinResponseTime: with the floor set, a fast answer (here an unknown phone, which touches no row)
// is held until the floor; the injected Sleep records the wait instead of sleeping.
func TestMinResponseTime(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var waits []time.Duration
	const floor = time.Hour
	e := newEnvWith(t, &grpcapi.Public{MinResponseTime: floor, Sleep: func(_ context.Context, d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		waits = append(waits, d)
	}})
	ctx := context.Background()
	began := time.Now()
	if _, err := e.public.Verify(ctx, &pb.VerifyRequest{Phone: "13700000000", Code: "123456", IdTail: "12345X"}); rpc.Reason(err) != domain.ReasonNotMatched {
		t.Fatalf("verify = %v", err)
	}
	if _, err := e.public.ResendCode(ctx, &pb.ResendCodeRequest{Phone: "13700000000", IdTail: "12345X"}); rpc.Reason(err) != domain.ReasonNotMatched {
		t.Fatalf("resend = %v", err)
	}
	elapsed := time.Since(began)
	mu.Lock()
	defer mu.Unlock()
	if len(waits) != 2 {
		t.Fatalf("waits = %v, want one per call", waits)
	}
	for _, w := range waits {
		// Each call was held until the floor: what it had spent plus the wait reaches it.
		if w > floor || w+elapsed < floor {
			t.Fatalf("wait %s: the answer would leave before the %s floor (calls took %s)", w, floor, elapsed)
		}
	}
	// The internal API and GetVerificationStatus are not held.
	if _, err := e.public.GetVerificationStatus(ctx, &pb.GetVerificationStatusRequest{OrderId: "nope"}); status.Code(err) != codes.NotFound || len(waits) != 2 {
		t.Fatalf("status = %v, waits %v", err, waits)
	}
}

// newUses is the use cases on a fresh PostgreSQL schema, with a fake clock at start, a fixed HMAC key
// and predictable codes.
func newUses(t *testing.T) (*pgxpool.Pool, *clock.Fake, *domain.Hasher, *app.App) {
	t.Helper()
	pool := pgtest.NewSchema(t, "verification", store.Migrations, outbox.Migrations, idempotency.Migrations)
	clk := clock.NewFake(start)
	keys, err := domain.ParseKeys("k1:" + strings.Repeat("ab", 32))
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := domain.NewHasher(keys)
	if err != nil {
		t.Fatal(err)
	}
	st := app.New(store.New(pool, clk, hasher, storetest.SealKeys(), domain.DefaultLimits, zap.NewNop(), nil), hasher, domain.DefaultLimits, zap.NewNop())
	st.SetRand(&storetest.SeqRand{})
	return pool, clk, hasher, st
}
