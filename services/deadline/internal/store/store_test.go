package store_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
	"github.com/icpverify/icpverify/services/deadline/internal/store"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func newStore(t *testing.T) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	pool := pgtest.NewSchema(t, "deadline", store.Migrations, idempotency.Migrations)
	return store.New(pool), pool
}

func schedule(t *testing.T, s *store.Store, reqID, order string, sub int32, due time.Time) (domain.Deadline, error) {
	t.Helper()
	req := &deadlinev1.ScheduleDeadlineRequest{RequestId: reqID, OrderId: order, Submission: sub}
	return s.Schedule(context.Background(), t0, reqID, req, domain.Key{OrderID: order, Submission: sub}, due)
}

func mustSchedule(t *testing.T, s *store.Store, order string, sub int32, due time.Time) domain.Deadline {
	t.Helper()
	d, err := schedule(t, s, "", order, sub, due)
	if err != nil {
		t.Fatalf("schedule %s/%d: %v", order, sub, err)
	}
	return d
}

func TestScheduleIdempotentAndConflict(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	due := t0.Add(24 * time.Hour)
	d, err := schedule(t, s, "r1", "o1", 1, due)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != domain.Pending || !d.DueAt.Equal(due) {
		t.Fatalf("scheduled %+v", d)
	}
	// Same business key, another request_id: the existing timer.
	again, err := schedule(t, s, "r2", "o1", 1, due)
	if err != nil || again.State != domain.Pending || !again.DueAt.Equal(due) {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	// Same key, different due time: conflict.
	if _, err := schedule(t, s, "r3", "o1", 1, due.Add(time.Minute)); errs.Reason(err) != domain.ReasonConflict {
		t.Fatalf("conflict: got %v", err)
	}
	// Same request_id, different request: refused.
	if _, err := schedule(t, s, "r1", "o1", 2, due); errs.Reason(err) != "REQUEST_ID_REUSED" {
		t.Fatalf("reused request id: got %v", err)
	}
	got, err := s.GetKey(ctx, domain.Key{OrderID: "o1", Submission: 1})
	if err != nil || !got.NextAttemptAt.Equal(due) || got.Attempts != 0 {
		t.Fatalf("stored %+v %v", got, err)
	}
}

func TestScheduleConcurrentSameKey(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	due := t0.Add(time.Hour)
	var wg sync.WaitGroup
	errc := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			_, err := schedule(t, s, fmt.Sprintf("r%d", i%4), "o1", 1, due)
			errc <- err
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Errorf("concurrent schedule: %v", err)
		}
	}
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM deadlines`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows %d %v", n, err)
	}
}

func TestNewerSubmissionCancelsOlder(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	mustSchedule(t, s, "o1", 1, t0.Add(time.Hour))
	mustSchedule(t, s, "other", 1, t0.Add(time.Hour))
	mustSchedule(t, s, "o1", 2, t0.Add(2*time.Hour))
	old, _ := s.GetKey(ctx, domain.Key{OrderID: "o1", Submission: 1})
	if old.State != domain.Cancelled {
		t.Fatalf("old submission %s, want CANCELLED", old.State)
	}
	if other, _ := s.GetKey(ctx, domain.Key{OrderID: "other", Submission: 1}); other.State != domain.Pending {
		t.Fatalf("other order touched: %s", other.State)
	}
	latest, err := s.Get(ctx, "o1")
	if err != nil || latest.Submission != 2 || latest.State != domain.Pending {
		t.Fatalf("latest %+v %v", latest, err)
	}
	// A late delivery of an older submission is stored but never armed.
	late := mustSchedule(t, s, "o3", 5, t0.Add(time.Hour))
	if late.State != domain.Pending {
		t.Fatal(late.State)
	}
	if d := mustSchedule(t, s, "o3", 4, t0.Add(time.Hour)); d.State != domain.Cancelled {
		t.Fatalf("superseded late schedule %s, want CANCELLED", d.State)
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	k := domain.Key{OrderID: "o1", Submission: 1}
	cancel := func(reqID string, k domain.Key) (domain.Deadline, error) {
		req := &deadlinev1.CancelDeadlineRequest{RequestId: reqID, OrderId: k.OrderID, Submission: k.Submission}
		return s.Cancel(ctx, t0, reqID, req, k)
	}
	if _, err := cancel("c0", k); errs.Reason(err) != domain.ReasonNotFound {
		t.Fatalf("unknown: %v", err)
	}
	mustSchedule(t, s, "o1", 1, t0)
	d, err := cancel("c1", k)
	if err != nil || d.State != domain.Cancelled {
		t.Fatalf("cancel %+v %v", d, err)
	}
	if d, err := cancel("c2", k); err != nil || d.State != domain.Cancelled {
		t.Fatalf("cancel again %+v %v", d, err)
	}
	if d, err := cancel("c1", k); err != nil || d.State != domain.Cancelled {
		t.Fatalf("replay %+v %v", d, err)
	}
	// A fired timer is returned unchanged.
	k2 := domain.Key{OrderID: "o2", Submission: 1}
	mustSchedule(t, s, "o2", 1, t0)
	claimed, err := s.Claim(ctx, t0, 10, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim %v %v", claimed, err)
	}
	if ok, err := s.MarkFired(ctx, k2, claimed[0].Attempts, t0, true); !ok || err != nil {
		t.Fatalf("fire %v %v", ok, err)
	}
	if d, err := cancel("c3", k2); err != nil || d.State != domain.Fired || !d.Closed {
		t.Fatalf("cancel fired %+v %v", d, err)
	}
	// Cancelled timers are never claimed.
	if claimed, _ := s.Claim(ctx, t0.Add(time.Hour), 10, time.Minute); len(claimed) != 0 {
		t.Fatalf("claimed %d cancelled/fired timers", len(claimed))
	}
}

func TestClaimHonoursNowAndLease(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for i := range 5 {
		mustSchedule(t, s, fmt.Sprintf("o%d", i), 1, t0.Add(time.Duration(i)*time.Minute))
	}
	if got, _ := s.Claim(ctx, t0.Add(-time.Nanosecond*1000), 10, time.Minute); len(got) != 0 {
		t.Fatalf("claimed %d before due", len(got))
	}
	got, err := s.Claim(ctx, t0.Add(2*time.Minute), 10, 30*time.Second)
	if err != nil || len(got) != 3 {
		t.Fatalf("claimed %d, want 3 (%v)", len(got), err)
	}
	for i, d := range got {
		if d.OrderID != fmt.Sprintf("o%d", i) || d.Attempts != 1 || !d.NextAttemptAt.Equal(t0.Add(2*time.Minute+30*time.Second)) {
			t.Fatalf("claimed %+v", d)
		}
	}
	// Leased: invisible until the lease ends.
	if again, _ := s.Claim(ctx, t0.Add(2*time.Minute+29*time.Second), 10, time.Minute); len(again) != 0 {
		t.Fatalf("claimed %d leased timers", len(again))
	}
	// Lease over: claimed again with a new attempt number; the stale claim can no longer write.
	again, err := s.Claim(ctx, t0.Add(2*time.Minute+30*time.Second), 10, time.Minute)
	if err != nil || len(again) != 3 || again[0].Attempts != 2 {
		t.Fatalf("re-claim %+v %v", again, err)
	}
	k := got[0].Key
	if ok, _ := s.MarkFired(ctx, k, 1, t0, false); ok {
		t.Fatal("stale claim fired the timer")
	}
	if ok, _ := s.Rearm(ctx, k, 1, t0.Add(time.Hour), "x"); ok {
		t.Fatal("stale claim re-armed the timer")
	}
	if ok, err := s.MarkFired(ctx, k, 2, t0.Add(3*time.Minute), true); !ok || err != nil {
		t.Fatalf("current claim could not fire: %v", err)
	}
	if ok, _ := s.MarkFired(ctx, k, 2, t0.Add(3*time.Minute), true); ok {
		t.Fatal("fired twice")
	}
	// Rearm refuses to move a timer before its due time (the table's check).
	if _, err := s.Rearm(ctx, again[1].Key, 2, t0, "x"); err == nil {
		t.Fatal("re-armed before due")
	}
	next, ok, err := s.NextDue(ctx)
	if err != nil || !ok || !next.Equal(t0.Add(3*time.Minute)) {
		t.Fatalf("NextDue %v %v %v", next, ok, err)
	}
}

func TestClaimSkipLocked(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := context.Background()
	for i := range 4 {
		mustSchedule(t, s, fmt.Sprintf("o%d", i), 1, t0)
	}
	// Another transaction holds o0 and o1 locked (a concurrent claim in flight): the claim skips
	// them instead of waiting.
	tx, err := pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	if _, err := tx.Exec(ctx, `SELECT 1 FROM deadlines WHERE order_id IN ('o0','o1') FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	got, err := s.Claim(cctx, t0, 10, time.Minute)
	if err != nil || len(got) != 2 {
		t.Fatalf("claim with locked rows: %+v %v", got, err)
	}
	for _, d := range got {
		if d.OrderID == "o0" || d.OrderID == "o1" {
			t.Fatalf("claimed locked row %s", d.OrderID)
		}
	}
}

func TestConcurrentClaimsDisjoint(t *testing.T) {
	t.Parallel()
	s, pool := newStore(t)
	ctx := context.Background()
	const n = 300
	for i := range n {
		mustSchedule(t, s, fmt.Sprintf("o%03d", i), 1, t0)
	}
	var schema string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatal(err)
	}
	pool2, err := pg.Connect(ctx, zap.NewNop(), pgtest.URL(), schema, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer pool2.Close()
	stores := []*store.Store{s, store.New(pool2)}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for {
				got, err := stores[w%2].Claim(ctx, t0, 7, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, d := range got {
					seen[d.OrderID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct timers, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s claimed %d times within one lease", id, c)
		}
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t)
	ctx := context.Background()
	for i := range 7 {
		mustSchedule(t, s, fmt.Sprintf("o%d", 6-i), 1, t0.Add(time.Duration(i)*time.Minute))
	}
	mustSchedule(t, s, "o6", 2, t0.Add(time.Hour)) // cancels o6/1 (the soonest)
	var all []domain.Deadline
	token := ""
	for {
		page, next, err := s.List(ctx, "", 3, token)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		token = next
	}
	if len(all) != 8 || all[0].OrderID != "o6" || all[7].Submission != 2 {
		t.Fatalf("list: %d rows %+v", len(all), all)
	}
	for i := 1; i < len(all); i++ {
		if all[i].DueAt.Before(all[i-1].DueAt) {
			t.Fatal("not soonest first")
		}
	}
	pending, next, err := s.List(ctx, domain.Pending, 50, "")
	if err != nil || len(pending) != 7 || next != "" {
		t.Fatalf("pending %d %q %v", len(pending), next, err)
	}
	_, next, _ = s.List(ctx, domain.Pending, 2, "")
	if _, _, err := s.List(ctx, domain.Cancelled, 2, next); errs.Reason(err) != domain.ReasonInvalidPageToken {
		t.Fatalf("token for another filter: %v", err)
	}
	if _, _, err := s.List(ctx, "", 2, "%%%"); errs.Reason(err) != domain.ReasonInvalidPageToken {
		t.Fatalf("garbage token: %v", err)
	}
}
