package store_test

import (
	"context"
	"fmt"
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

func TestPostgres(t *testing.T) {
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

// TestRowsStoredWithWebsites is PostgreSQL-specific: a spec and a record stored before services
// existed (their websites under "websites", without a kind) are read as services of kind WEBSITE,
// answered and checked as before, and written back as services.
func TestRowsStoredWithWebsites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewSchema(t, "filing", store.Migrations, outbox.Migrations, idempotency.Migrations)
	st := app.New(store.New(pool, clock.NewFake(storetest.T0), nil), app.Config{})
	person := &domain.Person{Name: "张三", IDType: iddoc.Passport, IDNumber: "E12345678", Phone: "13812345678"}
	spec, err := domain.Rules{}.Normalize(domain.Spec{FilingType: domain.FirstFiling, Principal: person,
		Services: []domain.Service{{Kind: domain.KindWebsite, Domain: "a.cn", Person: person}}})
	if err != nil {
		t.Fatal(err)
	}
	created, err := st.CreateOrder(ctx, storetest.PortalA, &filingv1.CreateOrderRequest{}, spec)
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetOrder().GetOrderId()
	if _, err := st.SubmitOrder(ctx, storetest.PortalA, &filingv1.SubmitOrderRequest{OrderId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{OrderId: id, Submission: 1}); err != nil {
		t.Fatal(err)
	}
	approved, err := st.RecordReviewOutcome(ctx, &filingv1.RecordReviewOutcomeRequest{OrderId: id, Outcome: filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED})
	if err != nil {
		t.Fatal(err)
	}
	subject := approved.GetOrder().GetSpec().GetSubjectId()
	// Rewrite both rows in the old form.
	const old = `(%s - 'services') || jsonb_build_object('websites', (SELECT jsonb_agg(w - 'kind') FROM jsonb_array_elements(%s->'services') w))`
	if _, err := pool.Exec(ctx, `UPDATE orders SET spec = `+fmt.Sprintf(old, "spec", "spec")); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE subjects SET record = `+fmt.Sprintf(old, "record", "record")); err != nil {
		t.Fatal(err)
	}
	var hasServices bool
	if err := pool.QueryRow(ctx, `SELECT record ? 'services' FROM subjects`).Scan(&hasServices); err != nil || hasServices {
		t.Fatalf("old record still has services: %v %v", hasServices, err)
	}
	o, err := st.GetOrder(ctx, storetest.PortalA, id)
	if err != nil || len(o.GetSpec().GetWebsites()) != 1 || o.GetSpec().GetWebsites()[0].GetDomain() != "a.cn" {
		t.Fatalf("old order answered as %v, %v", o.GetSpec(), err)
	}
	// The old record holds a.cn: deregistering it passes the checks, and the approval writes services.
	dereg, err := domain.Rules{}.Normalize(domain.Spec{FilingType: domain.DeregisterWebsite, SubjectID: subject,
		Websites: []domain.Website{{Domain: "a.cn", Person: person}}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := st.CreateOrder(ctx, storetest.PortalA, &filingv1.CreateOrderRequest{}, dereg)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := st.SubmitOrder(ctx, storetest.PortalA, &filingv1.SubmitOrderRequest{OrderId: d.GetOrder().GetOrderId()})
	if err != nil || len(sub.GetOrder().GetVerifiers()) != 1 {
		t.Fatalf("deregister against the old record: %v, %v", sub, err)
	}
	if _, err := st.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{OrderId: d.GetOrder().GetOrderId(), Submission: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.RecordReviewOutcome(ctx, &filingv1.RecordReviewOutcomeRequest{OrderId: d.GetOrder().GetOrderId(),
		Outcome: filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED}); err != nil {
		t.Fatal(err)
	}
	var hasWebsites bool
	if err := pool.QueryRow(ctx, `SELECT record ? 'websites' FROM subjects`).Scan(&hasWebsites); err != nil || hasWebsites {
		t.Fatalf("record written back with websites: %v %v", hasWebsites, err)
	}
}
