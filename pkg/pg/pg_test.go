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

// The services' connections plan prepared statements generically, unless the database URL says
// otherwise.
func TestConnectPlansGenericallyUnlessTheURLSaysOtherwise(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sep := "?"
	if strings.Contains(pgtest.URL(), "?") {
		sep = "&"
	}
	for url, want := range map[string]string{
		pgtest.URL(): pg.GenericPlans,
		pgtest.URL() + sep + "plan_cache_mode=auto": "auto",
	} {
		pool, err := pg.Connect(ctx, zap.NewNop(), url, "plan_mode_test", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var got string
		err = pool.QueryRow(ctx, "SHOW plan_cache_mode").Scan(&got)
		_, _ = pool.Exec(ctx, "DROP SCHEMA IF EXISTS plan_mode_test")
		pool.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("plan_cache_mode = %q, want %q", got, want)
		}
	}
}

// QueryCustomPlan's statement runs with custom plans and the given settings, which end with its
// transaction.
func TestQueryCustomPlanSettingsAreLocal(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sep := "?"
	if strings.Contains(pgtest.URL(), "?") {
		sep = "&"
	}
	// One connection: the statement after the claim runs where the claim ran.
	pool, err := pg.Connect(ctx, zap.NewNop(), pgtest.URL()+sep+"pool_max_conns=1", "custom_plan_test", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	defer pool.Exec(ctx, "DROP SCHEMA IF EXISTS custom_plan_test") //nolint:errcheck
	var mode, seqscan string
	err = pg.QueryCustomPlan(ctx, pool, []string{"enable_seqscan", "off"}, func(rows pgx.Rows) error {
		for rows.Next() {
			if err := rows.Scan(&mode, &seqscan); err != nil {
				return err
			}
		}
		return rows.Err()
	}, "SELECT current_setting('plan_cache_mode'), current_setting('enable_seqscan') WHERE $1::int = 1", 1)
	if err != nil {
		t.Fatal(err)
	}
	if mode != "force_custom_plan" || seqscan != "off" {
		t.Fatalf("inside: plan_cache_mode %q, enable_seqscan %q; want force_custom_plan, off", mode, seqscan)
	}
	if err := pool.QueryRow(ctx, "SELECT current_setting('plan_cache_mode'), current_setting('enable_seqscan')").Scan(&mode, &seqscan); err != nil {
		t.Fatal(err)
	}
	if mode != pg.GenericPlans || seqscan != "on" {
		t.Fatalf("after: plan_cache_mode %q, enable_seqscan %q; want the connection's own", mode, seqscan)
	}
}
