// Package pgtest gives each test its own PostgreSQL schema on the developer's (or CI's) server,
// dropped when the test ends, so store tests run in parallel on a real database.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/pg"
)

// DefaultURL is the database the development machines and CI run.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// URL returns TEST_DATABASE_URL or DefaultURL.
func URL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// NewSchema creates a fresh schema named after prefix, applies the migrations and returns a pool
// bound to it; the schema is dropped at the end of the test.
func NewSchema(t testing.TB, prefix string, sources ...pg.Source) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	schema := "t_" + prefix + "_" + hex.EncodeToString(b)
	pool, err := pg.Connect(ctx, zap.NewNop(), URL(), schema, 5*time.Second)
	if err != nil {
		t.Fatalf("connect to test database %s (start PostgreSQL or set TEST_DATABASE_URL): %v", URL(), err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		pool.Close()
	})
	if err := pg.Migrate(ctx, pool, sources...); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return pool
}

// WaitForLockWaiter returns once some transaction waits for a lock held by the backend holderPID
// (the holder's connection: tx.Conn().PgConn().PID()): a test that holds a lock and starts a call in a
// goroutine then knows the call is blocked on it before it moves the fake clock and releases the
// lock. Only waiters blocked by that backend count, so lock waits of tests running in parallel on the
// same server cannot end the wait early.
func WaitForLockWaiter(t testing.TB, pool *pgxpool.Pool, holderPID uint32) {
	t.Helper()
	for i := 0; ; i++ {
		var waiting int
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks
			WHERE NOT granted AND $1::int = ANY (pg_blocking_pids(pid))`, int64(holderPID)).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
		if i > 400 {
			t.Fatalf("no transaction ever waited for a lock held by backend %d", holderPID)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
