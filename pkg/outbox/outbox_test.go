package outbox_test

import (
	"context"
	"errors"
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
	"github.com/icpverify/icpverify/pkg/seal"
)

// engine is one outbox storage under test, with what the tests need to see inside it.
type engine struct {
	queue outbox.Queue
	add   func(t *testing.T, now time.Time, target string, msg proto.Message, sensitive bool)
	// left counts undelivered rows; wipedDead counts parked rows whose payload is empty.
	left, wipedDead func(t *testing.T) int
	// stored lists the rows as kept at rest (payloads sealed); restore overwrites one's target and
	// payload, as someone with write access to the table could.
	stored  func(t *testing.T) []outbox.Row
	restore func(t *testing.T, id int64, target string, payload []byte)
}

// testKeys is the keyring the engines under test seal sensitive payloads with.
var testKeys = mustKeys("t1:000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")

func mustKeys(spec string) *seal.Keyring {
	k, err := seal.Parse(spec)
	if err != nil {
		panic(err)
	}
	return k
}

// start is the fake clock's first instant in every test.
var start = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func engines(t *testing.T) map[string]func(t *testing.T) engine { return enginesWith(testKeys) }

// enginesWith are the engines with queues whose writes seal with keys, and whose reads open with them.
func enginesWith(keys *seal.Keyring) map[string]func(t *testing.T) engine {
	return map[string]func(t *testing.T) engine{
		"postgres": func(t *testing.T) engine {
			pool := pgtest.NewSchema(t, "outbox", outbox.Migrations)
			count := func(t *testing.T, where string) int {
				var n int
				if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM outbox WHERE "+where).Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			return engine{
				queue: outbox.PGQueue{Pool: pool, Keys: keys},
				add: func(t *testing.T, now time.Time, target string, msg proto.Message, sensitive bool) {
					err := pg.InTx(context.Background(), pool, func(tx pgx.Tx) error {
						return outbox.EnqueueAll(context.Background(), tx, keys, now,
							[]outbox.Message{{Target: target, Msg: msg, Sensitive: sensitive}})
					})
					if err != nil {
						t.Fatal(err)
					}
				},
				left:      func(t *testing.T) int { return count(t, "true") },
				wipedDead: func(t *testing.T) int { return count(t, "dead_at IS NOT NULL AND length(payload) = 0") },
				stored: func(t *testing.T) []outbox.Row {
					rows, err := pool.Query(context.Background(), `SELECT id, target, payload, attempts, key_id FROM outbox ORDER BY id`)
					if err != nil {
						t.Fatal(err)
					}
					out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (outbox.Row, error) {
						var x outbox.Row
						return x, r.Scan(&x.ID, &x.Target, &x.Payload, &x.Attempts, &x.KeyID)
					})
					if err != nil {
						t.Fatal(err)
					}
					return out
				},
				restore: func(t *testing.T, id int64, target string, payload []byte) {
					if _, err := pool.Exec(context.Background(), `UPDATE outbox SET target = $2, payload = $3 WHERE id = $1`, id, target, payload); err != nil {
						t.Fatal(err)
					}
				},
			}
		},
		"memory": func(t *testing.T) engine {
			q := outbox.NewMemQueue(keys)
			return engine{
				queue: q,
				add: func(t *testing.T, now time.Time, target string, msg proto.Message, sensitive bool) {
					if err := q.Add(now, target, msg, sensitive); err != nil {
						t.Fatal(err)
					}
				},
				left:      func(*testing.T) int { return q.Len() },
				wipedDead: q.WipedDeadForTest,
				stored:    q.StoredForTest,
				restore:   q.RestoreForTest,
			}
		},
	}
}

// Two relays on one queue deliver every row, and none twice while the lease holds.
func TestTwoRelaysDeliverEachRowOnce(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			clk := clock.NewFake(start)
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
				return &outbox.Relay{Queue: e.queue, Log: zap.NewNop(), Clock: clk, Handlers: map[string]outbox.Handler{"peer.Call": h}, Batch: 7}
			}
			const n = 200
			for i := range n {
				e.add(t, clk.Now(), "peer.Call", wrapperspb.String(time.Duration(i).String()), false)
			}
			if pending, err := e.queue.Pending(context.Background(), 1000); err != nil || len(pending) != n || pending[0].Target != "peer.Call" {
				t.Fatalf("pending before delivery: %d rows, %v", len(pending), err)
			}
			var wg sync.WaitGroup
			for _, r := range []*outbox.Relay{newRelay(), newRelay()} {
				wg.Go(func() {
					for {
						claimed, err := r.RunOnce(context.Background())
						if err != nil {
							t.Error(err)
							return
						}
						if claimed == 0 {
							return
						}
					}
				})
			}
			wg.Wait()
			if len(seen) != n {
				t.Fatalf("delivered %d distinct rows, want %d", len(seen), n)
			}
			for v, c := range seen {
				if c != 1 {
					t.Errorf("row %q delivered %d times", v, c)
				}
			}
			if left := e.left(t); left != 0 {
				t.Errorf("%d rows left after delivery", left)
			}
		})
	}
}

// A transient failure is retried after its backoff; a refusal for good parks the row, and a
// sensitive payload is wiped then.
func TestRetryAndDead(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			clk := clock.NewFake(start)
			var calls atomic.Int32
			relay := &outbox.Relay{Queue: e.queue, Log: zap.NewNop(), Clock: clk, Handlers: map[string]outbox.Handler{
				"flaky.Call": func(context.Context, []byte) error {
					if calls.Add(1) == 1 {
						return status.Error(codes.Unavailable, "down")
					}
					return nil
				},
				"strict.Call": func(context.Context, []byte) error { return status.Error(codes.FailedPrecondition, "no") },
			}}
			e.add(t, clk.Now(), "flaky.Call", wrapperspb.String("x"), false)
			e.add(t, clk.Now(), "strict.Call", wrapperspb.String("code 123456"), true)
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
			if got := e.wipedDead(t); got != 1 {
				t.Errorf("dead rows with a wiped payload = %d, want 1 (the sensitive refused row)", got)
			}
			if got := e.left(t); got != 1 {
				t.Errorf("rows left = %d, want only the dead one", got)
			}
			if pending, err := e.queue.Pending(ctx, 10); err != nil || len(pending) != 0 {
				t.Errorf("pending = %v, %v; want none (the dead row is parked)", pending, err)
			}
		})
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

// countingQueue counts the Delivered calls a relay makes and the ids they carry.
type countingQueue struct {
	outbox.Queue
	mu    sync.Mutex
	calls int
	ids   []int64
}

func (q *countingQueue) Delivered(ctx context.Context, ids ...int64) error {
	q.mu.Lock()
	q.calls++
	q.ids = append(q.ids, ids...)
	q.mu.Unlock()
	return q.Queue.Delivered(ctx, ids...)
}

// Delivered removes exactly the given rows in one call; the relay deletes a batch's delivered rows
// with one such call, and leaves a failed row to its retry.
func TestDeliveredBatch(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			ctx := context.Background()
			clk := clock.NewFake(start)
			for i := range 5 {
				e.add(t, clk.Now(), "peer.Call", wrapperspb.String(time.Duration(i).String()), false)
			}
			rows, err := e.queue.Claim(ctx, clk.Now(), 5, time.Minute)
			if err != nil || len(rows) != 5 {
				t.Fatalf("claimed %d rows, %v", len(rows), err)
			}
			if err := e.queue.Delivered(ctx); err != nil {
				t.Fatalf("empty Delivered: %v", err)
			}
			if err := e.queue.Delivered(ctx, rows[0].ID, rows[2].ID, rows[4].ID, 1<<40); err != nil {
				t.Fatal(err)
			}
			if left := e.left(t); left != 2 {
				t.Fatalf("%d rows left, want 2", left)
			}
			pending, err := e.queue.Pending(ctx, 10)
			if err != nil || len(pending) != 2 || pending[0].ID != rows[1].ID || pending[1].ID != rows[3].ID {
				t.Fatalf("pending = %v, %v; want rows %d and %d", pending, err, rows[1].ID, rows[3].ID)
			}
			if err := e.queue.Delivered(ctx, rows[1].ID); err != nil {
				t.Fatal(err)
			}
			if left := e.left(t); left != 1 {
				t.Fatalf("%d rows left, want 1", left)
			}

			// A relay batch: 9 calls succeed, one fails for now; one Delivered call for the 9.
			const n = 10
			for i := range n {
				e.add(t, clk.Now(), "peer.Call", wrapperspb.String("batch "+time.Duration(i).String()), false)
			}
			clk.Advance(2 * time.Minute) // the leftover row from above falls due again too
			var calls atomic.Int32
			q := &countingQueue{Queue: e.queue}
			relay := &outbox.Relay{Queue: q, Log: zap.NewNop(), Clock: clk, Batch: n + 1, Parallel: 4,
				Handlers: map[string]outbox.Handler{"peer.Call": func(context.Context, []byte) error {
					if calls.Add(1) == 3 {
						return status.Error(codes.Unavailable, "down")
					}
					return nil
				}}}
			if got, err := relay.RunOnce(ctx); err != nil || got != n+1 {
				t.Fatalf("claimed %d, %v; want %d", got, err, n+1)
			}
			if q.calls != 1 || len(q.ids) != n {
				t.Fatalf("Delivered called %d times with %d ids, want once with %d", q.calls, len(q.ids), n)
			}
			if left := e.left(t); left != 1 {
				t.Fatalf("%d rows left, want the failed one", left)
			}
			clk.Advance(outbox.Backoff(1))
			if got, _ := relay.RunOnce(ctx); got != 1 {
				t.Fatalf("retry claimed %d, want 1", got)
			}
			if left := e.left(t); left != 0 {
				t.Fatalf("%d rows left after the retry", left)
			}
		})
	}
}

// Run keeps claiming while batches are in flight, delivers every row once, and returns after the
// batches in flight are recorded.
func TestRunPipelines(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			clk := clock.NewFake(start)
			const n = 100
			for i := range n {
				e.add(t, clk.Now(), "peer.Call", wrapperspb.String(time.Duration(i).String()), false)
			}
			var mu sync.Mutex
			seen := map[string]int{}
			ctx, cancel := context.WithCancel(context.Background())
			relay := &outbox.Relay{Queue: e.queue, Log: zap.NewNop(), Clock: clk, Batch: 8, Parallel: 3, Poll: 5 * time.Millisecond,
				Handlers: map[string]outbox.Handler{"peer.Call": func(_ context.Context, payload []byte) error {
					var v wrapperspb.StringValue
					if err := proto.Unmarshal(payload, &v); err != nil {
						return err
					}
					mu.Lock()
					seen[v.Value]++
					mu.Unlock()
					return nil
				}}}
			done := make(chan error)
			go func() { done <- relay.Run(ctx) }()
			deadline := time.Now().Add(10 * time.Second)
			for e.left(t) != 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			<-done
			if left := e.left(t); left != 0 {
				t.Fatalf("%d rows left", left)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) != n {
				t.Fatalf("delivered %d distinct rows, want %d", len(seen), n)
			}
			for v, c := range seen {
				if c != 1 {
					t.Errorf("row %q delivered %d times", v, c)
				}
			}
		})
	}
}

// lostAnswerQueue commits a claim and then reports it failed, as a connection lost at COMMIT does.
type lostAnswerQueue struct {
	outbox.Queue
	lose atomic.Bool
}

func (q *lostAnswerQueue) Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]outbox.Row, error) {
	rows, err := q.Queue.Claim(ctx, now, limit, lease)
	if err == nil && q.lose.CompareAndSwap(true, false) {
		return nil, errors.New("unexpected EOF")
	}
	return rows, err
}

// A claim whose answer was lost hands its rows back: they go out at the next claim, not after the
// lease (another claim at the same instant takes nothing of the others').
func TestFailedClaimHandsRowsBack(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			ctx := context.Background()
			clk := clock.NewFake(start)
			for i := range 3 {
				e.add(t, clk.Now(), "peer.Call", wrapperspb.String(time.Duration(i).String()), false)
			}
			// A row claimed by another relay at another instant stays hidden.
			clk.Advance(time.Millisecond)
			other, err := e.queue.Claim(ctx, clk.Now(), 1, time.Hour)
			if err != nil || len(other) != 1 {
				t.Fatalf("other claim: %v, %v", other, err)
			}
			clk.Advance(time.Millisecond)
			q := &lostAnswerQueue{Queue: e.queue}
			q.lose.Store(true)
			var delivered atomic.Int32
			relay := &outbox.Relay{Queue: q, Log: zap.NewNop(), Clock: clk, Batch: 10, Lease: time.Hour,
				Handlers: map[string]outbox.Handler{"peer.Call": func(context.Context, []byte) error {
					delivered.Add(1)
					return nil
				}}}
			if n, err := relay.RunOnce(ctx); err == nil || n != 0 {
				t.Fatalf("first RunOnce = %d, %v; want the lost answer's error", n, err)
			}
			// Same clock: without the hand-back the two rows would wait an hour.
			if n, err := relay.RunOnce(ctx); err != nil || n != 2 || delivered.Load() != 2 {
				t.Fatalf("second RunOnce = %d, %v, %d delivered; want the 2 handed-back rows", n, err, delivered.Load())
			}
			if left := e.left(t); left != 1 {
				t.Fatalf("%d rows left, want only the other relay's", left)
			}
		})
	}
}

// extendCounter counts the Extend calls that moved a lease.
type extendCounter struct {
	outbox.Queue
	calls atomic.Int32
}

func (q *extendCounter) Extend(ctx context.Context, rows []outbox.Row, from, until time.Time) error {
	err := q.Queue.Extend(ctx, rows, from, until)
	if err == nil {
		q.calls.Add(1)
	}
	return err
}

// A batch whose calls outlast the lease keeps its rows: the relay renews the lease while it
// delivers, so no other replica claims them; a replica that dies stops renewing.
func TestLeaseRenewedWhileDelivering(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			ctx := context.Background()
			clk := clock.NewFake(start)
			for i := range 3 {
				e.add(t, clk.Now(), "peer.Call", wrapperspb.String(time.Duration(i).String()), false)
			}
			q := &extendCounter{Queue: e.queue}
			release := make(chan struct{})
			var started atomic.Int32
			relay := &outbox.Relay{Queue: q, Log: zap.NewNop(), Clock: clk, Batch: 10, Lease: time.Minute,
				RenewEvery: time.Millisecond,
				Handlers: map[string]outbox.Handler{"peer.Call": func(context.Context, []byte) error {
					started.Add(1)
					<-release
					return nil
				}}}
			done := make(chan error, 1)
			go func() {
				_, err := relay.RunOnce(ctx)
				done <- err
			}()
			for started.Load() < 3 {
				time.Sleep(time.Millisecond) // polling a condition, not timing anything
			}
			// An hour later by the clock, after a renewal made at that hour, the rows are still hidden.
			clk.Advance(time.Hour)
			n := q.calls.Load()
			for q.calls.Load() < n+2 {
				time.Sleep(time.Millisecond) // polling a condition, not timing anything
			}
			if rows, err := e.queue.Claim(ctx, clk.Now(), 10, time.Minute); err != nil || len(rows) != 0 {
				t.Fatalf("another claim took %d rows (%v) of a batch still being delivered", len(rows), err)
			}
			close(release)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if left := e.left(t); left != 0 {
				t.Fatalf("%d rows left after delivery", left)
			}
		})
	}
}

// claimRecorder records the size of every claim and signals each one.
type claimRecorder struct {
	outbox.Queue
	mu      sync.Mutex
	sizes   []int
	claimed chan struct{}
}

func (q *claimRecorder) Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]outbox.Row, error) {
	rows, err := q.Queue.Claim(ctx, now, limit, lease)
	q.mu.Lock()
	q.sizes = append(q.sizes, len(rows))
	q.mu.Unlock()
	select {
	case q.claimed <- struct{}{}:
	default:
	}
	return rows, err
}

// Rows committed while the relay lingers after a Wake go out in the same claim as the row that
// woke it; the relay does not claim before the linger is over.
func TestLingerGathersRowsIntoOneClaim(t *testing.T) {
	t.Parallel()
	mem := outbox.NewMemQueue(nil)
	q := &claimRecorder{Queue: mem, claimed: make(chan struct{}, 1)}
	clk := clock.NewFake(start)
	var delivered atomic.Int32
	relay := &outbox.Relay{Queue: q, Log: zap.NewNop(), Clock: clk, Poll: time.Hour, Linger: time.Second,
		Handlers: map[string]outbox.Handler{"peer.Call": func(context.Context, []byte) error {
			delivered.Add(1)
			return nil
		}}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- relay.Run(ctx) }()
	defer cancel()
	claimed := func(what string) {
		select {
		case <-q.claimed:
		case <-time.After(10 * time.Second):
			t.Fatalf("no claim %s", what)
		}
	}
	claimed("at start") // the first look finds nothing; the relay now waits for a Wake

	add := func(i int) {
		if err := mem.Add(clk.Now(), "peer.Call", wrapperspb.Int32(int32(i)), false); err != nil {
			t.Fatal(err)
		}
	}
	add(0)
	relay.Wake()
	select {
	case <-q.claimed:
		t.Fatal("claimed at once after the Wake, without lingering")
	case <-time.After(200 * time.Millisecond):
	}
	for i := 1; i < 5; i++ { // commits during the linger
		add(i)
		relay.Wake()
	}
	claimed("after the linger")
	for deadline := time.Now().Add(10 * time.Second); delivered.Load() < 5 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if got := delivered.Load(); got != 5 {
		t.Fatalf("delivered %d rows, want 5", got)
	}
	if len(q.sizes) != 2 || q.sizes[1] != 5 {
		t.Fatalf("claims took %v rows; want [0 5]: the five rows in one claim, and no empty claim for the wakes during the linger", q.sizes)
	}
	q.mu.Unlock()

	// A stop during a linger is not held up by it.
	relay.Wake()
	cancel()
	select {
	case <-done:
	case <-time.After(500 * time.Millisecond):
		t.Fatal("Run did not return within 500 ms of the stop while lingering")
	}
	q.mu.Lock()
}
