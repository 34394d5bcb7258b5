package pg_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
)

// GenericPlans holds for its transaction only: a pooled connection goes back to PostgreSQL's own
// choice of plans, which the claims and the lists need.
func TestGenericPlansEndWithTheirTransaction(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sep := "?"
	if strings.Contains(pgtest.URL(), "?") {
		sep = "&"
	}
	// One connection: what follows the transaction runs where it ran.
	pool, err := pg.Connect(ctx, zap.NewNop(), pgtest.URL()+sep+"pool_max_conns=1", "generic_plans_test", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	defer pool.Exec(ctx, "DROP SCHEMA IF EXISTS generic_plans_test") //nolint:errcheck
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var inside, after string
	if _, err := tx.Exec(ctx, pg.GenericPlans); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&inside); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := pool.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&after); err != nil {
		t.Fatal(err)
	}
	if inside != "force_generic_plan" || after != "auto" {
		t.Fatalf("plan_cache_mode %q inside the transaction, %q after it; want force_generic_plan, auto", inside, after)
	}
}
