package store_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/verification/internal/app"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
	"github.com/icpverify/icpverify/services/verification/internal/store"
	"github.com/icpverify/icpverify/services/verification/internal/store/storetest"
)

func newPool(t *testing.T) *pgxpool.Pool {
	return pgtest.NewSchema(t, "verification", store.Migrations, outbox.Migrations, idempotency.Migrations)
}

func newStore(pool *pgxpool.Pool, clk clock.Clock, h *domain.Hasher) *app.App {
	s := app.New(store.New(pool, clk, h, storetest.SealKeys(), domain.DefaultLimits, zap.NewNop(), nil), h, domain.DefaultLimits, zap.NewNop())
	s.SetRand(&storetest.SeqRand{})
	s.LinkBase = storetest.LinkBase
	return s
}

func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clk *clock.Fake) storetest.Engine {
		pool := newPool(t)
		return storetest.Engine{
			Store:   newStore(pool, clk, storetest.Hasher(t)),
			Outbox:  outbox.PGQueue{Pool: pool, Keys: storetest.SealKeys()},
			Replica: func(clk clock.Clock, h *domain.Hasher) storetest.Store { return newStore(pool, clk, h) },
		}
	})
}

func openRequest(order string, deadline time.Time) (*pb.OpenSessionRequest, domain.OpenSpec) {
	req := &pb.OpenSessionRequest{RequestId: "filing:open-session:" + order + ":1", OrderId: order, Submission: 1,
		DeadlineAt: timestamppb.New(deadline),
		Verifiers:  []*pb.VerifierSpec{{Phone: "+8613812345678", Roles: []string{"PRINCIPAL"}, IdTails: []string{"12345X", "654321"}}}}
	spec, err := domain.NormalizeOpen(domain.OpenSpec{OrderID: order, Submission: 1, DeadlineAt: deadline,
		Verifiers: []domain.VerifierSpec{{Phone: "+8613812345678", Roles: []string{"PRINCIPAL"}, Tails: []string{"12345X", "654321"}}}})
	if err != nil {
		panic(err)
	}
	return req, spec
}

// TestOpenSessionRequestHashIsKeyed: the idempotency table must not hold an unkeyed hash of phones and
// ID tails (a 6-character tail and a phone number are few enough to brute-force).
func TestOpenSessionRequestHashIsKeyed(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	s := newStore(pool, clock.NewFake(storetest.T0), storetest.Hasher(t))
	req, spec := openRequest("o1", storetest.T0.Add(time.Hour))
	if _, err := s.OpenSession(context.Background(), req, spec); err != nil {
		t.Fatal(err)
	}
	var stored []byte
	if err := pool.QueryRow(context.Background(), `SELECT request_hash FROM idempotency_keys WHERE request_id = $1`,
		req.GetRequestId()).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	if plain := sha256.Sum256(b); string(stored) == string(plain[:]) {
		t.Fatal("request_hash is an unkeyed SHA-256 of the request with its phones and ID tails")
	}
	// The redelivery is still recognised.
	if _, err := s.OpenSession(context.Background(), req, spec); err != nil {
		t.Fatalf("redelivery = %v", err)
	}
}

// TestVerifyReadsTheClockAfterTheLock: a check queued behind the session lock while deadline_at passes
// is judged at the time it gets the lock, not at the time it arrived.
func TestVerifyReadsTheClockAfterTheLock(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	clk := clock.NewFake(storetest.T0)
	s := newStore(pool, clk, storetest.Hasher(t))
	deadline := storetest.T0.Add(time.Hour)
	req, spec := openRequest("o1", deadline)
	if _, err := s.OpenSession(context.Background(), req, spec); err != nil {
		t.Fatal(err)
	}
	rows, err := outbox.PGQueue{Pool: pool, Keys: storetest.SealKeys()}.Pending(context.Background(), 10)
	if err != nil || len(rows) != 1 {
		t.Fatalf("outbox = %v, %v", rows, err)
	}
	m := &smsv1.SendMessageRequest{}
	if err := proto.Unmarshal(rows[0].Payload, m); err != nil {
		t.Fatal(err)
	}
	code := m.GetParams()["code"]

	ctx := context.Background()
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck
	if _, err := holder.Exec(ctx, `SELECT 1 FROM sessions WHERE order_id = 'o1' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := s.Verify(ctx, domain.VerifyInput{Phone: "+8613812345678", Code: code, Tail: "12345X"})
		done <- err
	}()
	// Wait until the check is blocked on the row lock, then let the deadline pass and release the lock.
	pgtest.WaitForLockWaiter(t, pool, holder.Conn().PgConn().PID())
	clk.Set(deadline)
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; domain.ErrNotMatched().Error() != errString(err) {
		t.Fatalf("a check that got the lock at the deadline answered %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

// TestPhoneFailuresPrunedByAge: a failure older than the window is deleted by a later write that
// counts one, so the table holds no more than the failures that still count.
func TestPhoneFailuresPrunedByAge(t *testing.T) {
	pool := newPool(t)
	clk := clock.NewFake(storetest.T0)
	ctx := context.Background()
	count := func() int {
		var n int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM phone_failures`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i, order := range []string{"o1", "o2"} {
		s := newStore(pool, clk, storetest.Hasher(t)) // a fresh store prunes with its first write
		req, spec := openRequest(order, clk.Now().Add(24*time.Hour))
		if _, err := s.OpenSession(ctx, req, spec); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Verify(ctx, domain.VerifyInput{Phone: "+8613812345678", Code: "999999", Tail: "12345X"}); err == nil {
			t.Fatal("a wrong code passed")
		}
		if n := count(); n != 1 {
			t.Fatalf("after failure %d: %d rows, want 1 (the older one pruned)", i+1, n)
		}
		clk.Advance(domain.DefaultLimits.PhoneFailureWindow)
	}
}

// TestCodesSealedInTheOutbox: the SendMessage rows, which carry the code, are kept sealed with the
// store's seal key (its id beside the payload), from OpenSession and from a resend alike; the queue
// hands them out opened.
func TestCodesSealedInTheOutbox(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	clk := clock.NewFake(storetest.T0)
	s := newStore(pool, clk, storetest.Hasher(t))
	ctx := context.Background()
	req, spec := openRequest("o1", storetest.T0.Add(time.Hour))
	if _, err := s.OpenSession(ctx, req, spec); err != nil {
		t.Fatal(err)
	}
	clk.Advance(domain.DefaultLimits.ResendInterval)
	if _, err := s.ResendVerifier(ctx, &pb.ResendVerifierCodeRequest{RequestId: "r1", OrderId: "o1", VerifierId: "v1"}); err != nil {
		t.Fatal(err)
	}
	opened, err := outbox.PGQueue{Pool: pool, Keys: storetest.SealKeys()}.Pending(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	for _, r := range opened {
		m := &smsv1.SendMessageRequest{}
		if r.Target != convert.TargetSendMessage || proto.Unmarshal(r.Payload, m) != nil || len(m.GetParams()["code"]) != 6 {
			t.Fatalf("outbox row %d (%s) does not open to a SendMessage with a code", r.ID, r.Target)
		}
		codes = append(codes, m.GetParams()["code"])
	}
	if len(codes) != 2 {
		t.Fatalf("%d codes in the outbox, want 2 (open and resend)", len(codes))
	}
	rows, err := pool.Query(ctx, `SELECT payload, key_id, sensitive FROM outbox ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for ; rows.Next(); n++ {
		var payload []byte
		var kid string
		var sensitive bool
		if err := rows.Scan(&payload, &kid, &sensitive); err != nil {
			t.Fatal(err)
		}
		if kid != storetest.SealKeys().ActiveKeyID() || !sensitive {
			t.Errorf("row %d: key %q, sensitive %v; want sealed with %q", n, kid, sensitive, storetest.SealKeys().ActiveKeyID())
		}
		for _, c := range codes {
			if bytes.Contains(payload, []byte(c)) {
				t.Errorf("row %d holds a code in the clear", n)
			}
		}
	}
	if n != 2 {
		t.Fatalf("%d rows at rest, want 2", n)
	}
}
