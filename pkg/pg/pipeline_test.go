package pg_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
)

// batchCounter counts the batches a pool sends: one per round trip of a Pipeline.
type batchCounter struct{ n atomic.Int32 }

func (c *batchCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (c *batchCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *batchCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *batchCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *batchCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

type pipelineEnv struct {
	pool    *pgxpool.Pool // one connection, so a test finds the connection a Pipeline released
	other   *pgxpool.Pool // the same schema, for holding locks and looking
	batches *batchCounter
}

// newPipelineEnv is a fresh schema with table t (k text primary key, v integer).
func newPipelineEnv(t *testing.T) *pipelineEnv {
	t.Helper()
	ctx := context.Background()
	other := pgtest.NewSchema(t, "pipeline")
	var schema string
	if err := other.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Exec(ctx, `CREATE TABLE t (k text PRIMARY KEY, v integer NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(pgtest.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	bc := &batchCounter{}
	cfg.ConnConfig.Tracer = bc
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &pipelineEnv{pool: pool, other: other, batches: bc}
}

// rows is t's content, read through the other pool.
func (e *pipelineEnv) rows(t *testing.T) map[string]int {
	t.Helper()
	rows, err := e.other.Query(context.Background(), `SELECT k, v FROM t`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	var k string
	var v int
	if _, err := pgx.ForEachRow(rows, []any{&k, &v}, func() error { out[k] = v; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// assertIdle checks that the pool's connection is back outside any transaction.
func (e *pipelineEnv) assertIdle(t *testing.T) {
	t.Helper()
	conn, err := e.pool.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	if st := conn.Conn().PgConn().TxStatus(); st != 'I' {
		t.Fatalf("released connection in transaction status %q, want idle", st)
	}
}

// The reads' answers are there when write decides; the whole is two round trips and commits.
func TestPipelineReadsDecideWrites(t *testing.T) {
	t.Parallel()
	e := newPipelineEnv(t)
	ctx := context.Background()
	if _, err := e.other.Exec(ctx, `INSERT INTO t VALUES ('a', 1)`); err != nil {
		t.Fatal(err)
	}
	var v int
	err := pg.Pipeline(ctx, e.pool, func(b *pgx.Batch) error {
		b.Queue(pg.GenericPlans)
		b.Queue(`SELECT v FROM t WHERE k = 'a' FOR UPDATE`).QueryRow(func(r pgx.Row) error { return r.Scan(&v) })
		return nil
	}, func(b *pgx.Batch) error {
		if v != 1 {
			t.Errorf("write saw v = %d, want the read's 1", v)
		}
		b.Queue(`UPDATE t SET v = $1 WHERE k = 'a'`, v+1)
		b.Queue(`INSERT INTO t VALUES ('b', $1)`, v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.rows(t); got["a"] != 2 || got["b"] != 1 {
		t.Fatalf("rows %v, want a=2 b=1", got)
	}
	if n := e.batches.n.Load(); n != 2 {
		t.Fatalf("%d round trips, want 2", n)
	}
	e.assertIdle(t)
}

// Without reads, BEGIN, the writes and COMMIT are one round trip.
func TestPipelineWritesOnlyIsOneRoundTrip(t *testing.T) {
	t.Parallel()
	e := newPipelineEnv(t)
	err := pg.Pipeline(context.Background(), e.pool, nil, func(b *pgx.Batch) error {
		b.Queue(`INSERT INTO t VALUES ('a', 1), ('b', 2)`)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.rows(t); len(got) != 2 {
		t.Fatalf("rows %v, want a and b", got)
	}
	if n := e.batches.n.Load(); n != 1 {
		t.Fatalf("%d round trips, want 1", n)
	}
	e.assertIdle(t)
}

// A write PostgreSQL refuses rolls back the whole transaction, the reads' writes too; the error is
// the database's (a known rollback, not an unknown outcome) and the connection goes back idle.
func TestPipelineRefusedWriteRollsBackEverything(t *testing.T) {
	t.Parallel()
	e := newPipelineEnv(t)
	err := pg.Pipeline(context.Background(), e.pool, func(b *pgx.Batch) error {
		b.Queue(`INSERT INTO t VALUES ('r', 1)`)
		return nil
	}, func(b *pgx.Batch) error {
		b.Queue(`INSERT INTO t VALUES ('w', 1)`)
		b.Queue(`INSERT INTO t VALUES ('r', 2)`) // duplicate key
		b.Queue(`INSERT INTO t VALUES ('after', 1)`)
		return nil
	})
	if !pg.IsUniqueViolation(err) || errors.Is(err, pg.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want the unique violation, outcome known", err)
	}
	if got := e.rows(t); len(got) != 0 {
		t.Fatalf("rows %v after the rollback, want none", got)
	}
	e.assertIdle(t)
}

// An error from a callback ends the transaction rolled back and comes back unchanged; a read that
// fails never reaches write.
func TestPipelineCallbackErrorsRollBack(t *testing.T) {
	t.Parallel()
	e := newPipelineEnv(t)
	ctx := context.Background()
	refused := errors.New("refused")
	err := pg.Pipeline(ctx, e.pool, func(b *pgx.Batch) error {
		b.Queue(`INSERT INTO t VALUES ('r', 1)`)
		return nil
	}, func(*pgx.Batch) error { return refused })
	if !errors.Is(err, refused) {
		t.Fatalf("err = %v, want write's", err)
	}
	err = pg.Pipeline(ctx, e.pool, func(b *pgx.Batch) error {
		b.Queue(`INSERT INTO t VALUES ('r', 1)`)
		b.Queue(`SELECT 1 / 0`)
		return nil
	}, func(*pgx.Batch) error {
		t.Error("write ran after a failed read")
		return nil
	})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("err = %v, want division by zero", err)
	}
	if got := e.rows(t); len(got) != 0 {
		t.Fatalf("rows %v, want none", got)
	}
	e.assertIdle(t)
}

// The context ending while the write round trip waits (here on a lock) leaves the outcome unknown:
// pgx gives up on the connection, and the server may carry on and commit once the lock is free (it
// does when it has read COMMIT before the connection closed). Retry does not run it again, and the
// pool replaces the abandoned connection.
func TestPipelineOutcomeUnknownWhenTheContextEndsAfterCommitWasSent(t *testing.T) {
	t.Parallel()
	e := newPipelineEnv(t)
	ctx := context.Background()
	holder, err := e.other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback(ctx) //nolint:errcheck // after Commit it does nothing
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_xact_lock(42)`); err != nil {
		t.Fatal(err)
	}
	callCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	attempts := 0
	done := make(chan error, 1)
	go func() {
		done <- pg.Retry(callCtx, func() error {
			attempts++
			return pg.Pipeline(callCtx, e.pool, nil, func(b *pgx.Batch) error {
				b.Queue(`INSERT INTO t VALUES ('x', 1)`)
				b.Queue(`SELECT pg_advisory_xact_lock(42)`)
				return nil
			})
		})
	}()
	// COMMIT is sent, behind the wait for the holder's lock 42.
	pgtest.WaitForLockWaiter(t, e.other, holder.Conn().PgConn().PID())
	cancel()
	err = <-done
	var unknown *pg.OutcomeUnknownError
	if !errors.Is(err, pg.ErrOutcomeUnknown) || !errors.As(err, &unknown) || attempts != 1 {
		t.Fatalf("err = %v after %d attempts, want an unknown outcome after 1", err, attempts)
	}
	if err := holder.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pg.Pipeline(ctx, e.pool, nil, func(b *pgx.Batch) error {
		b.Queue(`INSERT INTO t VALUES ('y', 1)`)
		return nil
	}); err != nil {
		t.Fatalf("the pool after an abandoned connection: %v", err)
	}
	e.assertIdle(t)
}

// A callback that refuses the result of a write does not stop the server, which has run the rest of
// the round trip, COMMIT included: the outcome is unknown to the caller, and here it committed.
func TestPipelineRefusedWriteResultIsAnUnknownOutcome(t *testing.T) {
	t.Parallel()
	e := newPipelineEnv(t)
	err := pg.Pipeline(context.Background(), e.pool, nil, func(b *pgx.Batch) error {
		b.Queue(`INSERT INTO t VALUES ('a', 1)`).Exec(func(ct pgconn.CommandTag) error {
			return errors.New("want 2 rows")
		})
		return nil
	})
	if !errors.Is(err, pg.ErrOutcomeUnknown) {
		t.Fatalf("err = %v, want an unknown outcome", err)
	}
	if got := e.rows(t); got["a"] != 1 {
		t.Fatalf("rows %v, want a committed", got)
	}
	e.assertIdle(t)
}

// Retry repeats a deadlock, never an unknown outcome, whatever caused it.
func TestRetryNeverRepeatsAnUnknownOutcome(t *testing.T) {
	t.Parallel()
	deadlock := &pgconn.PgError{Code: "40P01", Severity: "ERROR"}
	n := 0
	err := pg.Retry(context.Background(), func() error {
		n++
		if n == 1 {
			return deadlock
		}
		return &pg.OutcomeUnknownError{Err: deadlock}
	})
	if !errors.Is(err, pg.ErrOutcomeUnknown) || n != 2 {
		t.Fatalf("err = %v after %d attempts, want the unknown outcome after 2", err, n)
	}
}
