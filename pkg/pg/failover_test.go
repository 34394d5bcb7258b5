package pg_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
)

// A failover behind a fixed address (a virtual IP, a Kubernetes Service) leaves the pool's connections on
// a server that has become read-only while new connections reach a writable one. Here one throwaway
// cluster plays both: ALTER SYSTEM makes the sessions already open read-only, and a database-level
// setting, which only new sessions read, keeps new ones writable. Every write on an old connection
// answers 25006; without dropping those connections the pool would keep them (for up to an hour) and
// fail one write in four forever. The pool must recover after at most one failure per old connection,
// each answered as Unavailable.
func TestReadOnlyServerConnectionsAreDropped(t *testing.T) {
	c := pgtest.NewCluster(t)
	ctx := context.Background()
	pool, err := pg.Connect(ctx, zap.NewNop(), c.URL("postgres")+"&pool_max_conns=4&pool_min_conns=4", "failover", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE t (n int)`); err != nil {
		t.Fatal(err)
	}
	// Open all four connections, so each is "old" when the server turns read-only.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, err := pool.Exec(ctx, `SELECT pg_sleep(0.05)`); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	old := map[uint32]bool{}
	for _, conn := range acquireAll(t, pool, 4) {
		old[conn.Conn().PgConn().PID()] = true
		conn.Release()
	}
	for _, q := range []string{
		`ALTER DATABASE postgres SET default_transaction_read_only = off`,
		`ALTER SYSTEM SET default_transaction_read_only = on`,
		`SELECT pg_reload_conf()`,
	} {
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// Each old backend reads the reloaded file when it next waits for a query: wait until all four have.
	for _, conn := range acquireAll(t, pool, 4) {
		for deadline := time.Now().Add(10 * time.Second); ; {
			var ro string
			if err := conn.QueryRow(ctx, `SHOW default_transaction_read_only`).Scan(&ro); err != nil {
				t.Fatal(err)
			}
			if ro == "on" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the old sessions did not turn read-only")
			}
		}
		conn.Release()
	}
	write := func(n int) error {
		return pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO t VALUES ($1)`, n)
			return err
		})
	}
	failures := 0
	for n := range 40 {
		err := write(n)
		if err == nil {
			continue
		}
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "25006" {
			t.Fatalf("write %d: %v, want 25006 or success", n, err)
		}
		if !pg.IsUnavailable(err) {
			t.Fatalf("25006 is not Unavailable: %v", err)
		}
		failures++
	}
	if failures == 0 || failures > 4 {
		t.Fatalf("%d writes failed read-only, want between 1 and 4 (one per old connection at most)", failures)
	}
	for _, conn := range acquireAll(t, pool, 4) {
		if old[conn.Conn().PgConn().PID()] {
			t.Errorf("connection of backend %d, made before the server turned read-only, is still pooled", conn.Conn().PgConn().PID())
		}
		conn.Release()
	}
}

// acquireAll holds n connections of pool at once (so they are n different ones); the caller releases them.
func acquireAll(t *testing.T, pool *pgxpool.Pool, n int) []*pgxpool.Conn {
	t.Helper()
	conns := make([]*pgxpool.Conn, 0, n)
	for range n {
		conn, err := pool.Acquire(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, conn)
	}
	return conns
}

// A COMMIT whose wait for the synchronous standbys is cancelled (a query cancel, statement_timeout or
// pg_cancel_backend; here the last, on a server whose only named standby never comes) is answered
// "COMMIT" with a warning that it is local only: lost if the primary is. Both transaction helpers must
// report it as an unknown outcome, never as success.
func TestCancelledSyncReplicationWaitIsAnUnknownOutcome(t *testing.T) {
	c := pgtest.NewCluster(t, "synchronous_standby_names = 'nosuchstandby'", "synchronous_commit = on")
	ctx := context.Background()
	// Sessions commit locally (a startup parameter) unless a transaction asks for the standby.
	pool, err := pg.Connect(ctx, zap.NewNop(), c.URL("postgres")+"&synchronous_commit=local", "syncrep", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pool.Exec(ctx, `CREATE TABLE t (n int)`); err != nil {
		t.Fatal(err)
	}
	const waitForStandby = `SELECT set_config('synchronous_commit', 'on', true)`
	// cancelled runs commit in the background, cancels its wait for the standby once it waits, and
	// returns its error.
	cancelled := func(commit func() error) error {
		done := make(chan error, 1)
		go func() { done <- commit() }()
		for deadline := time.Now().Add(10 * time.Second); ; {
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(pg_cancel_backend(pid)) FROM pg_stat_activity WHERE wait_event = 'SyncRep'`).
				Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no commit waits for the standby")
			}
		}
		return <-done
	}
	check := func(name string, err error) {
		t.Helper()
		if !errors.Is(err, pg.ErrOutcomeUnknown) || !pg.IsUnavailable(err) {
			t.Errorf("%s: err = %v, want an unknown outcome answered as Unavailable", name, err)
		}
	}
	check("Pipeline", cancelled(func() error {
		return pg.Pipeline(ctx, pool, nil, func(b *pgx.Batch) error {
			b.Queue(waitForStandby)
			b.Queue(`INSERT INTO t VALUES (1)`)
			return nil
		})
	}))
	check("InTx", cancelled(func() error {
		return pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, waitForStandby); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO t VALUES (2)`)
			return err
		})
	}))
	// The warning belongs to the commit that got it: later commits without the wait succeed on the
	// same connections.
	for n := 3; n <= 4; n++ {
		if err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO t VALUES ($1)`, n)
			return err
		}); err != nil {
			t.Fatalf("a later local commit: %v", err)
		}
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM t`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("rows = %d (%v), want 4: the cancelled waits committed locally, as PostgreSQL says", n, err)
	}
}
