package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
	"github.com/icpverify/icpverify/services/deadline/internal/store"
	"github.com/icpverify/icpverify/services/deadline/internal/store/storetest"
)

// newPool is a fresh migrated schema.
func newPool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	return pgtest.NewSchema(t, "deadline", store.Migrations, idempotency.Migrations)
}

// TestPostgres runs the engine suite on PostgreSQL, one schema per test; the replica is a second
// pool on the same schema, as a second replica of the service would have.
func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T, clk *clock.Fake) storetest.Engine {
		pool := newPool(t)
		var schema string
		if err := pool.QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schema); err != nil {
			t.Fatal(err)
		}
		pool2, err := pg.Connect(context.Background(), zap.NewNop(), pgtest.URL(), schema, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool2.Close)
		return storetest.Engine{Store: store.New(pool, clk), Replica: store.New(pool2, clk)}
	})
}

// TestClaimSkipLocked is PostgreSQL-only: a claim skips rows another transaction holds locked
// instead of waiting for them.
func TestClaimSkipLocked(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	s := store.New(pool, clock.NewFake(storetest.T0))
	ctx := context.Background()
	for i := range 4 {
		k := domain.Key{OrderID: fmt.Sprintf("o%d", i), Submission: 1}
		req := &deadlinev1.ScheduleDeadlineRequest{OrderId: k.OrderID, Submission: 1}
		if _, err := s.Schedule(ctx, "", req, k, storetest.T0); err != nil {
			t.Fatal(err)
		}
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT 1 FROM deadlines WHERE order_id IN ('o0','o1') FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := s.Claim(cctx, storetest.T0, 10, time.Minute)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim with locked rows: %+v %v", got, err)
	}
	for _, d := range got {
		if d.OrderID == "o0" || d.OrderID == "o1" {
			t.Fatalf("claimed locked row %s", d.OrderID)
		}
	}
}

// TestCancelReadsTheClockAfterTheLock: a cancel that waited for another change of its order records
// the time it got the order's lock, not the time it arrived (the placeholder it leaves is due then).
func TestCancelReadsTheClockAfterTheLock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := newPool(t)
	clk := clock.NewFake(storetest.T0)
	s := store.New(pool, clk)
	holder, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck // after Commit it does nothing
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('deadline:o1'))`); err != nil {
		t.Fatal(err)
	}
	type result struct {
		d   domain.Deadline
		err error
	}
	done := make(chan result, 1)
	go func() {
		k := domain.Key{OrderID: "o1", Submission: 1}
		d, err := s.Cancel(ctx, "c1", &deadlinev1.CancelDeadlineRequest{RequestId: "c1", OrderId: "o1", Submission: 1}, k)
		done <- result{d, err}
	}()
	pgtest.WaitForLockWaiter(t, pool, holder.Conn().PgConn().PID()) // the call is blocked on the lock
	later := storetest.T0.Add(time.Hour)
	clk.Set(later)
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.d.State != domain.Cancelled || !r.d.DueAt.Equal(later) {
		t.Fatalf("cancel after the wait: %s due %v, %v; want CANCELLED due %v", r.d.State, r.d.DueAt, r.err, later)
	}
}
