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
		pgtest.URL():                                pg.GenericPlans,
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
