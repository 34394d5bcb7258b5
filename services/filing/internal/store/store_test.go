package store_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/clock"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
	"github.com/icpverify/icpverify/services/filing/internal/store"
	"github.com/icpverify/icpverify/services/filing/internal/store/storetest"
)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clk *clock.Fake, wake func()) storetest.Engine {
		pool := pgtest.NewSchema(t, "filing", store.Migrations, outbox.Migrations, idempotency.Migrations)
		return storetest.Engine{Engine: store.New(pool, clk, wake), Outbox: outbox.PGQueue{Pool: pool}}
	})
}

// TestIDTailsOnlyInTheSensitiveOutboxRow is PostgreSQL-specific: the ID tails are not a column of
// order_verifiers, and the OpenSession row that carries them is wiped if it is ever parked.
func TestIDTailsOnlyInTheSensitiveOutboxRow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewSchema(t, "filing", store.Migrations, outbox.Migrations, idempotency.Migrations)
	st := app.New(store.New(pool, clock.NewFake(storetest.T0), nil), app.Config{})
	spec, err := domain.Rules{}.Normalize(domain.Spec{FilingType: domain.FirstFiling,
		Principal: &domain.Person{Name: "张三", IDType: iddoc.Passport, IDNumber: "E12345678", Phone: "13812345678"},
		Websites:  []domain.Website{{Domain: "a.cn", Person: &domain.Person{Name: "张三", IDType: iddoc.Passport, IDNumber: "E12345678", Phone: "13812345678"}}}})
	if err != nil {
		t.Fatal(err)
	}
	created, err := st.CreateOrder(ctx, storetest.PortalA, &filingv1.CreateOrderRequest{}, spec)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SubmitOrder(ctx, storetest.PortalA, &filingv1.SubmitOrderRequest{OrderId: created.GetOrder().GetOrderId()}); err != nil {
		t.Fatal(err)
	}
	var columns int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema()
		AND table_name = 'order_verifiers' AND column_name = 'id_tails'`).Scan(&columns); err != nil || columns != 0 {
		t.Fatalf("order_verifiers.id_tails columns = %d, %v", columns, err)
	}
	rows, err := pool.Query(ctx, `SELECT target FROM outbox WHERE sensitive ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(targets) != 1 || targets[0] != convert.TargetOpenSession {
		t.Fatalf("sensitive rows = %v, %v", targets, err)
	}
}
