package pg_test

import (
	"context"
	"testing"
	"time"

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
