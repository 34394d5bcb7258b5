package store_test

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/filing/internal/store"
)

// TestHoldersBackfilled: migration 0004 makes holders of the records approved before it: each tenant
// whose last approved FIRST_FILING or ADD_ACCESS of the subject came after its last approved
// CANCEL_ACCESS; an order not approved makes nobody a holder.
func TestHoldersBackfilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	before := fstest.MapFS{}
	names, err := fs.Glob(store.Migrations.FS, "migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if name < "migrations/0004" {
			b, err := fs.ReadFile(store.Migrations.FS, name)
			if err != nil {
				t.Fatal(err)
			}
			before[name] = &fstest.MapFile{Data: b}
		}
	}
	pool := pgtest.NewSchema(t, "filing_backfill", pg.Source{Name: store.Migrations.Name, FS: before})
	t0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO subjects (subject_id, record, created_at, updated_at) VALUES ('sub_1', '{"subject_id":"sub_1"}', $1, $1)`, t0)
	order := func(id string, filingType int, state, tenant string, approvedAt time.Duration) {
		b.Queue(`INSERT INTO orders (order_id, filing_type, subject_id, spec, state, created_at, updated_at, tenant)
			VALUES ($1, $2, 'sub_1', '{}', $3, $4, $5, $6)`, id, filingType, state, t0, t0.Add(approvedAt), tenant)
	}
	order("ord_a", 1, "APPROVED", "a", time.Hour)       // a's first filing
	order("ord_b1", 3, "APPROVED", "b", 2*time.Hour)    // b took access...
	order("ord_b2", 6, "APPROVED", "b", 3*time.Hour)    // ...and gave it up
	order("ord_c1", 6, "APPROVED", "c", 2*time.Hour)    // c gave up an earlier access...
	order("ord_c2", 3, "APPROVED", "c", 4*time.Hour)    // ...and took it again
	order("ord_d", 3, "UNDER_REVIEW", "d", 5*time.Hour) // not approved
	if err := pool.SendBatch(ctx, b).Close(); err != nil {
		t.Fatal(err)
	}
	if err := pg.Migrate(ctx, pool, store.Migrations); err != nil {
		t.Fatal(err)
	}
	rows, err := pool.Query(ctx, `SELECT tenant FROM subject_holders WHERE subject_id = 'sub_1' ORDER BY tenant`)
	if err != nil {
		t.Fatal(err)
	}
	holders, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || strings.Join(holders, ",") != "a,c" {
		t.Fatalf("holders after the migration: %v (%v), want a,c", holders, err)
	}
}
