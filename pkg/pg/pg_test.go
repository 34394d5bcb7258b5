package pg_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
)

// GenericPlans holds for its transaction only: a pooled connection goes back to its own choice of
// plans, which the claims and the lists need.
func TestGenericPlansEndWithTheirTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pg.Connect(ctx, zap.NewNop(), pgtest.URL(), "generic_plans_test", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	defer pool.Exec(ctx, "DROP SCHEMA IF EXISTS generic_plans_test") //nolint:errcheck
	// One connection: what follows the transaction runs where it ran.
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	show := func() string {
		var mode string
		if err := conn.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&mode); err != nil {
			t.Fatal(err)
		}
		return mode
	}
	before := show()
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, pg.GenericPlans); err != nil {
		t.Fatal(err)
	}
	inside := show()
	if _, err := conn.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if after := show(); inside != "force_generic_plan" || after != before {
		t.Fatalf("plan_cache_mode %q before, %q inside the transaction, %q after it; want force_generic_plan inside, as before after",
			before, inside, after)
	}
}

// A generic plan made while a table was analyzed empty must not scan it once it has grown: inside
// GenericPlans the lookup by an indexed key keeps its index (the per-phone failures read, planned on
// an empty table, scanned every row on every Verify batch).
func TestGenericPlansKeepTheIndexOfATableAnalyzedEmpty(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, err := pg.Connect(ctx, zap.NewNop(), pgtest.URL(), "generic_plans_empty_test", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	defer pool.Exec(ctx, "DROP SCHEMA IF EXISTS generic_plans_empty_test CASCADE") //nolint:errcheck
	conn, err := pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	inBatch := func(sql string) string {
		t.Helper()
		exec("BEGIN")
		defer exec("COMMIT")
		exec(pg.GenericPlans)
		var plan, line string
		rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan += line + "\n"
		}
		rows.Close()
		return plan
	}
	exec("CREATE TABLE failures (key bytea NOT NULL, at timestamptz NOT NULL)")
	exec("CREATE INDEX failures_key ON failures (key)")
	exec("ANALYZE failures")
	exec("PREPARE lookup(bytea[]) AS SELECT at FROM failures WHERE key = ANY($1)")
	inBatch("EXPLAIN EXECUTE lookup('{\\x01}')") // the generic plan is made now, on the empty table
	exec("INSERT INTO failures SELECT decode(md5(i::text), 'hex'), now() FROM generate_series(1, 5000) i")
	if plan := inBatch("EXPLAIN EXECUTE lookup('{\\x01}')"); strings.Contains(plan, "Seq Scan") {
		t.Fatalf("the lookup scans the grown table:\n%s", plan)
	}
}
