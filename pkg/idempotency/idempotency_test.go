package idempotency_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
)

// Concurrent twins of one request run the effect once and all get the first answer.
func TestDoRunsOnce(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewSchema(t, "idem", idempotency.Migrations)
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	var runs atomic.Int32
	req := wrapperspb.String("create order")
	newResp := func() *wrapperspb.StringValue { return &wrapperspb.StringValue{} }
	var wg sync.WaitGroup
	answers := make([]string, 8)
	for i := range answers {
		wg.Go(func() {
			resp, err := idempotency.Do(context.Background(), pool, now, "/svc/Create", "req-1", req, newResp,
				func(tx pgx.Tx) (*wrapperspb.StringValue, error) {
					n := runs.Add(1)
					time.Sleep(20 * time.Millisecond) // hold the transaction open so the twins overlap
					return wrapperspb.String("answer " + string(rune('0'+n))), nil
				})
			if err != nil {
				t.Error(err)
				return
			}
			answers[i] = resp.Value
		})
	}
	wg.Wait()
	for _, a := range answers {
		if a != answers[0] {
			t.Fatalf("answers differ: %v", answers)
		}
	}
	if runs.Load() != 1 {
		t.Fatalf("the effect ran %d times for one request_id, want once", runs.Load())
	}
	var stored int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM idempotency_keys").Scan(&stored); err != nil || stored != 1 {
		t.Fatalf("stored %d keys, %v", stored, err)
	}

	_, err := idempotency.Do(context.Background(), pool, now, "/svc/Create", "req-1", wrapperspb.String("something else"), newResp,
		func(tx pgx.Tx) (*wrapperspb.StringValue, error) { return wrapperspb.String("x"), nil })
	if errs.Reason(err) != "REQUEST_ID_REUSED" {
		t.Fatalf("reused request id with another request: %v", err)
	}
}
