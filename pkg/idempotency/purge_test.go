package idempotency_test

import (
	"context"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
)

// Purge deletes exactly the answers stored before the cut, across several batches.
func TestPurgeDeletesOnlyOldAnswers(t *testing.T) {
	pool := pgtest.NewSchema(t, "idem_purge", idempotency.Migrations)
	ctx := context.Background()
	cut := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	if _, err := pool.Exec(ctx, `INSERT INTO idempotency_keys (method, request_id, request_hash, response, created_at)
		SELECT 'm', 'old-' || i, '\x00'::bytea, '\x00'::bytea, $1::timestamptz - i * interval '1 second' FROM generate_series(1, 12000) i
		UNION ALL SELECT 'm', 'new-' || i, '\x00'::bytea, '\x00'::bytea, $1::timestamptz + i * interval '1 second' FROM generate_series(0, 9) i`, cut); err != nil {
		t.Fatal(err)
	}
	n, err := idempotency.Purge(ctx, pool, cut)
	if err != nil || n != 12000 {
		t.Fatalf("purged %d (%v), want 12000", n, err)
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE request_id LIKE 'new-%'`).Scan(&left); err != nil || left != 10 {
		t.Fatalf("%d recent answers left (%v), want all 10", left, err)
	}
}
