package outbox_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
)

func enqueue(t *testing.T, relay *outbox.Relay, target string, values ...string) {
	t.Helper()
	err := pg.InTx(context.Background(), relay.Pool, func(tx pgx.Tx) error {
		for _, v := range values {
			if err := outbox.Enqueue(context.Background(), tx, relay.Clock.Now(), target, wrapperspb.String(v)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func count(t *testing.T, relay *outbox.Relay, where string) int {
	var n int
	if err := relay.Pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE "+where).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Two relays on one table deliver every row, and none twice while the lease holds.
func TestTwoRelaysDeliverEachRowOnce(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewSchema(t, "outbox", outbox.Migrations)
	clk := clock.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	var mu sync.Mutex
	seen := map[string]int{}
	h := func(_ context.Context, payload []byte) error {
		var v wrapperspb.StringValue
		if err := proto.Unmarshal(payload, &v); err != nil {
			return err
		}
		mu.Lock()
		seen[v.Value]++
		mu.Unlock()
		return nil
	}
	newRelay := func() *outbox.Relay {
		return &outbox.Relay{Pool: pool, Log: zap.NewNop(), Clock: clk, Handlers: map[string]outbox.Handler{"peer.Call": h}, Batch: 7}
	}
	a, b := newRelay(), newRelay()
	var values []string
	for i := range 200 {
		values = append(values, string(rune('A'+i%26))+time.Duration(i).String())
	}
	enqueue(t, a, "peer.Call", values...)
	var wg sync.WaitGroup
	for _, r := range []*outbox.Relay{a, b} {
		wg.Go(func() {
			for {
				n, err := r.RunOnce(context.Background())
				if err != nil {
					t.Error(err)
					return
				}
				if n == 0 {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(seen) != len(values) {
		t.Fatalf("delivered %d distinct rows, want %d", len(seen), len(values))
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("row %q delivered %d times", v, n)
		}
	}
	if left := count(t, a, "true"); left != 0 {
		t.Errorf("%d rows left after delivery", left)
	}
}

// A transient failure is retried after its backoff; a refusal for good parks the row as dead.
func TestRetryAndDead(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewSchema(t, "outbox", outbox.Migrations)
	clk := clock.NewFake(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC))
	var calls atomic.Int32
	relay := &outbox.Relay{Pool: pool, Log: zap.NewNop(), Clock: clk, Handlers: map[string]outbox.Handler{
		"flaky.Call": func(context.Context, []byte) error {
			if calls.Add(1) == 1 {
				return status.Error(codes.Unavailable, "down")
			}
			return nil
		},
		"strict.Call": func(context.Context, []byte) error { return status.Error(codes.FailedPrecondition, "no") },
	}}
	enqueue(t, relay, "flaky.Call", "x")
	err := pg.InTx(context.Background(), pool, func(tx pgx.Tx) error {
		return outbox.EnqueueSensitive(context.Background(), tx, clk.Now(), "strict.Call", wrapperspb.String("code 123456"))
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if n, err := relay.RunOnce(ctx); err != nil || n != 2 {
		t.Fatalf("first run claimed %d, %v", n, err)
	}
	if n, _ := relay.RunOnce(ctx); n != 0 {
		t.Fatalf("a failed row came back before its backoff: claimed %d", n)
	}
	clk.Advance(outbox.Backoff(1))
	if n, _ := relay.RunOnce(ctx); n != 1 {
		t.Fatalf("after the backoff claimed %d rows, want the flaky one", n)
	}
	if got := count(t, relay, "dead_at IS NOT NULL AND length(payload) = 0"); got != 1 {
		t.Errorf("dead rows with a wiped payload = %d, want 1 (the sensitive refused row)", got)
	}
	if got := count(t, relay, "true"); got != 1 {
		t.Errorf("rows left = %d, want only the dead one", got)
	}
}

func TestBackoff(t *testing.T) {
	t.Parallel()
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
	for i, w := range want {
		if got := outbox.Backoff(i + 1); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := outbox.Backoff(100); got != 30*time.Second {
		t.Errorf("Backoff(100) = %v, want the 30s cap", got)
	}
}
