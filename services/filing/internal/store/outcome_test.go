package store

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// These tests drive outcomeBatch with batches of a chosen make-up, which a burst of concurrent
// calls (storetest) produces only by chance.

var outcomeT0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func newOutcomeStore(t testing.TB) (*Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewSchema(t, "filing", Migrations, outbox.Migrations, idempotency.Migrations)
	return New(pool, clock.NewFake(outcomeT0), nil), pool
}

// submitted creates and submits n orders awaiting verification (submission 1).
func submitted(t testing.TB, s *Store, n int) []string {
	t.Helper()
	ctx := context.Background()
	p := &domain.Person{Name: "张三", IDType: iddoc.Passport, IDNumber: "E12345678", Phone: "13812345678"}
	spec, err := domain.Rules{}.Normalize(domain.Spec{FilingType: domain.FirstFiling, Principal: p,
		Websites: []domain.Website{{Domain: "a.cn", Person: p}}})
	if err != nil {
		t.Fatal(err)
	}
	a := app.New(s, app.Config{MaxOpenChallengesPerPhone: -1}) // the orders share their phones
	ids := make([]string, n)
	for i := range ids {
		created, err := a.CreateOrder(ctx, testActor, &filingv1.CreateOrderRequest{}, spec)
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = created.GetOrder().GetOrderId()
		if _, err := a.SubmitOrder(ctx, testActor, &filingv1.SubmitOrderRequest{OrderId: ids[i]}); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func mvCall(t *testing.T, orderID, requestID string, sub int32) outcomeCall {
	t.Helper()
	c := outcomeCall{method: filingv1.FilingInternalService_MarkVerified_FullMethodName, requestID: requestID, orderID: orderID,
		submission: sub, ev: domain.EventVerified}
	return withHash(t, c, &filingv1.MarkVerifiedRequest{RequestId: requestID, OrderId: orderID, Submission: sub})
}

func retCall(t *testing.T, orderID, requestID string, sub int32) outcomeCall {
	t.Helper()
	reason := filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS
	c := outcomeCall{method: filingv1.FilingInternalService_ReturnOrder_FullMethodName, requestID: requestID, orderID: orderID,
		submission: sub, ev: domain.EventReturn, reason: domain.ReturnReason(reason)}
	return withHash(t, c, &filingv1.ReturnOrderRequest{RequestId: requestID, OrderId: orderID, Submission: sub, Reason: reason})
}

func withHash(t *testing.T, c outcomeCall, req proto.Message) outcomeCall {
	t.Helper()
	if c.requestID != "" {
		h, err := idempotency.Hash(req)
		if err != nil {
			t.Fatal(err)
		}
		c.hash = h
	}
	return c
}

// mixedBatch is one batch of every case, on orders a..e: twins, two calls on one order, a reused
// request_id, a refused request whose request_id is then used by a valid one, an unknown order.
func mixedBatch(t *testing.T, ids []string) []outcomeCall {
	a, b, c, d, e := ids[0], ids[1], ids[2], ids[3], ids[4]
	return []outcomeCall{
		mvCall(t, a, "k1", 1),             // applies
		mvCall(t, a, "k1", 1),             // its twin: the same answer
		retCall(t, a, "k2", 1),            // already verified: INVALID_STATE_TRANSITION
		retCall(t, b, "", 1),              // applies, no idempotency
		mvCall(t, b, "", 1),               // already returned: INVALID_STATE_TRANSITION
		mvCall(t, c, "k3", 1),             // applies
		mvCall(t, c, "k3", 2),             // REQUEST_ID_REUSED
		mvCall(t, "ord_missing", "k4", 1), // NotFound
		mvCall(t, d, "k5", 2),             // STALE_SUBMISSION, stores nothing
		mvCall(t, d, "k5", 1),             // so this one runs: applies
		retCall(t, e, "k6", 1),            // applies
		retCall(t, e, "k7", 1),            // a redelivery under a new id: the order unchanged
	}
}

type outcomeSummary struct {
	reason string          // error reason, "" on success
	order  *filingv1.Order // the answer without its order id
}

func summarize(results []batch.Result[*filingv1.Order]) []outcomeSummary {
	out := make([]outcomeSummary, len(results))
	for i, r := range results {
		if r.Err != nil {
			out[i].reason = errs.Reason(r.Err)
			if out[i].reason == "" {
				out[i].reason = r.Err.Error()
			}
			continue
		}
		o := proto.Clone(r.Value).(*filingv1.Order)
		o.OrderId = ""
		out[i].order = o
	}
	return out
}

// TestOutcomeBatchAsOneByOne runs the same calls as one batch and as batches of one (the per-call
// path): every answer and error is the same, and so are the orders afterwards; run again, every call
// with a request_id gets its stored answer.
func TestOutcomeBatchAsOneByOne(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	run := func(together bool) (first, second []outcomeSummary, orders []*filingv1.Order, keys int) {
		s, pool := newOutcomeStore(t)
		ids := submitted(t, s, 5)
		calls := mixedBatch(t, ids)
		exec := func() []batch.Result[*filingv1.Order] {
			if together {
				return s.outcomeBatch(ctx, calls)
			}
			var out []batch.Result[*filingv1.Order]
			for _, c := range calls {
				out = append(out, s.outcomeBatch(ctx, []outcomeCall{c})...)
			}
			return out
		}
		res := exec()
		for i, r := range res {
			if r.Err == nil {
				got, err := getOrder(ctx, s, r.Value.GetOrderId())
				if err != nil || !proto.Equal(got, r.Value) {
					t.Fatalf("together=%v call %d answered %v, GetOrder shows %v (%v)", together, i, r.Value, got, err)
				}
			}
		}
		first = summarize(res)
		s.clock.(*clock.Fake).Advance(time.Minute)
		second = summarize(exec())
		for _, id := range ids {
			o, err := getOrder(ctx, s, id)
			if err != nil {
				t.Fatal(err)
			}
			o = proto.Clone(o).(*filingv1.Order)
			o.OrderId = ""
			orders = append(orders, o)
		}
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM idempotency_keys WHERE method IN ($1, $2)`,
			filingv1.FilingInternalService_MarkVerified_FullMethodName, filingv1.FilingInternalService_ReturnOrder_FullMethodName).Scan(&keys); err != nil {
			t.Fatal(err)
		}
		return first, second, orders, keys
	}
	batched1, batched2, batchedOrders, batchedKeys := run(true)
	single1, single2, singleOrders, singleKeys := run(false)

	want := []string{"", "", domain.ReasonInvalidStateTransition, "", domain.ReasonInvalidStateTransition, "", errs.RequestIDReused.Reason,
		domain.ReasonOrderNotFound, domain.ReasonStaleSubmission, "", "", ""}
	for i, w := range want {
		if batched1[i].reason != w {
			t.Fatalf("call %d: reason %q, want %q", i, batched1[i].reason, w)
		}
	}
	// The second run: k5 now names the valid request, so its stale twin is a reuse.
	want[8] = errs.RequestIDReused.Reason
	for i, w := range want {
		if batched2[i].reason != w {
			t.Fatalf("second run, call %d: reason %q, want %q", i, batched2[i].reason, w)
		}
	}
	for i := range batched1 {
		if batched1[i].reason != single1[i].reason || !proto.Equal(batched1[i].order, single1[i].order) {
			t.Fatalf("call %d: batched %+v, one by one %+v", i, batched1[i], single1[i])
		}
		if batched2[i].reason != single2[i].reason || !proto.Equal(batched2[i].order, single2[i].order) {
			t.Fatalf("second run, call %d: batched %+v, one by one %+v", i, batched2[i], single2[i])
		}
	}
	for i := range batchedOrders {
		if len(batchedOrders[i].GetHistory()) != 3 || !proto.Equal(batchedOrders[i], singleOrders[i]) {
			t.Fatalf("order %d: batched %v, one by one %v", i, batchedOrders[i], singleOrders[i])
		}
	}
	if batchedKeys != 5 || singleKeys != 5 {
		t.Fatalf("stored answers: %d batched, %d one by one, want 5 (k1, k3, k5, k6, k7)", batchedKeys, singleKeys)
	}
}

// TestOutcomeBatchErrorStaysItsOwn: an order that cannot be read fails its batch, which is then run
// call by call: only that order's call fails.
func TestOutcomeBatchErrorStaysItsOwn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool := newOutcomeStore(t)
	ids := submitted(t, s, 3)
	if _, err := pool.Exec(ctx, `UPDATE orders SET spec = '[]' WHERE order_id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	res := s.outcomeBatch(ctx, []outcomeCall{mvCall(t, ids[0], "a", 1), mvCall(t, ids[1], "b", 1), retCall(t, ids[2], "c", 1)})
	if res[0].Err != nil || res[2].Err != nil || res[1].Err == nil {
		t.Fatalf("results = %+v", res)
	}
	for _, i := range []int{0, 2} {
		got, err := getOrder(ctx, s, ids[i])
		if err != nil || !proto.Equal(got, res[i].Value) || len(got.GetHistory()) != 3 {
			t.Fatalf("order %d: answered %v, GetOrder shows %v (%v)", i, res[i].Value, got, err)
		}
	}
	var history, keys int
	if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM order_history WHERE order_id = $1),
		(SELECT count(*) FROM idempotency_keys WHERE request_id = 'b')`, ids[1]).Scan(&history, &keys); err != nil {
		t.Fatal(err)
	}
	if history != 2 || keys != 0 {
		t.Fatalf("the failed call left %d history rows and %d stored answers", history, keys)
	}
}

// roundTrips counts what a pool sends: single statements and pipelined batches.
type roundTrips struct{ queries, batches atomic.Int64 }

func (r *roundTrips) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	r.queries.Add(1)
	return ctx
}
func (r *roundTrips) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (r *roundTrips) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	r.batches.Add(1)
	return ctx
}
func (r *roundTrips) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (r *roundTrips) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// TestOutcomeBatchTwoRoundTrips: a batch costs two pipelines (BEGIN and the reads; the writes and
// COMMIT), however many calls it holds.
func TestOutcomeBatchTwoRoundTrips(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, pool := newOutcomeStore(t)
	cfg := pool.Config()
	trace := &roundTrips{}
	cfg.ConnConfig.Tracer = trace
	traced, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer traced.Close()
	s := New(traced, clock.NewFake(outcomeT0), nil)
	ids := submitted(t, s, 5)
	trace.queries.Store(0)
	trace.batches.Store(0)
	res := s.outcomeBatch(ctx, mixedBatch(t, ids))
	for i, r := range res {
		if r.Err != nil && i != 2 && i != 4 && i != 6 && i != 7 && i != 8 {
			t.Fatalf("call %d: %v", i, r.Err)
		}
	}
	if q, b := trace.queries.Load(), trace.batches.Load(); q != 0 || b != 2 {
		t.Fatalf("a batch of %d calls sent %d statements and %d pipelines, want 0 and 2", len(res), q, b)
	}
}

// TestOutcomeReplicas: two stores on one database (two replicas) get the outcomes of the same
// orders at once, in opposite orders and under different request ids: every call succeeds (no
// deadlock survives the retries) and each order changes once.
func TestOutcomeReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, pool := newOutcomeStore(t)
	b := New(pool, clock.NewFake(outcomeT0), nil)
	ids := submitted(t, a, 40)
	start := make(chan struct{})
	var wg sync.WaitGroup
	errCh := make(chan error, 2*len(ids))
	for r, s := range []*Store{a, b} {
		for i := range ids {
			id := ids[i]
			if r == 1 {
				id = ids[len(ids)-1-i]
			}
			wg.Go(func() {
				<-start
				_, err := s.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: fmt.Sprintf("r%d-%s", r, id), OrderId: id, Submission: 1})
				errCh <- err
			})
		}
	}
	close(start)
	wg.Wait()
	close(errCh)
	for err := range errCh {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		o, err := getOrder(ctx, a, id)
		if err != nil || o.GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW || len(o.GetHistory()) != 3 {
			t.Fatalf("order %s: %v %v", id, o, err)
		}
	}
}

// getOrder reads an order as GetOrder answers it.
func getOrder(ctx context.Context, s *Store, id string) (*filingv1.Order, error) {
	o, err := s.GetOrder(ctx, id)
	if err != nil {
		return nil, err
	}
	return convert.Order(o), nil
}

// testActor is the portal these tests act as.
var testActor = domain.Actor{ID: "apikey:test", Tenant: "test"}
