package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/pagetoken"

	"go.uber.org/zap"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
	"github.com/icpverify/icpverify/services/deadline/internal/sweeper"
)

func testClaimHonoursNowAndLease(t *testing.T, e *env) {
	s := e.Store
	ctx := context.Background()
	for i := range 5 {
		mustSchedule(t, s, fmt.Sprintf("o%d", i), 1, T0.Add(time.Duration(i)*time.Minute))
	}
	if got, _ := s.Claim(ctx, T0.Add(-time.Microsecond), 10, time.Minute); len(got) != 0 {
		t.Fatalf("claimed %d before due", len(got))
	}
	got, err := s.Claim(ctx, T0.Add(2*time.Minute), 10, 30*time.Second)
	if err != nil || len(got) != 3 {
		t.Fatalf("claimed %d, want 3 (%v)", len(got), err)
	}
	for i, d := range got {
		if d.OrderID != fmt.Sprintf("o%d", i) || d.Attempts != 1 || !d.NextAttemptAt.Equal(T0.Add(2*time.Minute+30*time.Second)) {
			t.Fatalf("claimed %+v", d)
		}
	}
	// Leased: invisible until the lease ends.
	if again, _ := s.Claim(ctx, T0.Add(2*time.Minute+29*time.Second), 10, time.Minute); len(again) != 0 {
		t.Fatalf("claimed %d leased timers", len(again))
	}
	// Lease over: claimed again with a new attempt number; the stale claim can no longer write.
	again, err := s.Claim(ctx, T0.Add(2*time.Minute+30*time.Second), 10, time.Minute)
	if err != nil || len(again) != 3 || again[0].Attempts != 2 {
		t.Fatalf("re-claim %+v %v", again, err)
	}
	k := got[0].Key
	if ok, _ := s.MarkFired(ctx, k, 1, T0, false); ok {
		t.Fatal("stale claim fired the timer")
	}
	if ok, _ := s.Rearm(ctx, k, 1, T0.Add(time.Hour), "x"); ok {
		t.Fatal("stale claim re-armed the timer")
	}
	if ok, err := s.MarkFired(ctx, k, 2, T0.Add(3*time.Minute), true); !ok || err != nil {
		t.Fatalf("current claim could not fire: %v", err)
	}
	if ok, _ := s.MarkFired(ctx, k, 2, T0.Add(3*time.Minute), true); ok {
		t.Fatal("fired twice")
	}
	if d := mustGet(t, s, k); d.State != domain.Fired || !d.Closed || !d.FiredAt.Equal(T0.Add(3*time.Minute)) {
		t.Fatalf("fired %+v", d)
	}
	if ok, _ := s.MarkFired(ctx, key("nope", 1), 1, T0, true); ok {
		t.Fatal("fired an unknown timer")
	}
	// Rearm refuses to move a timer before its due time, and re-arms the current claim.
	if _, err := s.Rearm(ctx, again[1].Key, 2, T0, "x"); err == nil {
		t.Fatal("re-armed before due")
	}
	if ok, err := s.Rearm(ctx, again[1].Key, 2, T0.Add(10*time.Minute), "Unavailable: x"); !ok || err != nil {
		t.Fatalf("re-arm: %v %v", ok, err)
	}
	if d := mustGet(t, s, again[1].Key); d.State != domain.Pending || d.LastError != "Unavailable: x" || !d.NextAttemptAt.Equal(T0.Add(10*time.Minute)) {
		t.Fatalf("re-armed %+v", d)
	}
	// Batch limits the claim, soonest next attempt first: o3 (3:00) before o2 (3:30) and o4 (4:00).
	if one, err := s.Claim(ctx, T0.Add(4*time.Minute), 1, time.Minute); err != nil || len(one) != 1 || one[0].OrderID != "o3" {
		t.Fatalf("batch of one: %+v %v", one, err)
	}
	next, ok, err := s.NextDue(ctx)
	if err != nil || !ok || !next.Equal(T0.Add(3*time.Minute+30*time.Second)) {
		t.Fatalf("NextDue %v %v %v", next, ok, err)
	}
}

func testConcurrentClaimsDisjoint(t *testing.T, e *env) {
	ctx := context.Background()
	const n = 300
	for i := range n {
		mustSchedule(t, e.Store, fmt.Sprintf("o%03d", i), 1, T0)
	}
	stores := []Store{e.Store, e.Replica}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for {
				got, err := stores[w%2].Claim(ctx, T0, 7, time.Hour)
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

// Two sweepers on two handles of one engine, with flaky close calls: every timer fires exactly once,
// verification is called once per timer plus once per injected failure (no duplicate call from two
// sweepers holding one timer), and never before the due time.
func testTwoSweepersFireEachTimerOnce(t *testing.T, e *env) {
	const n = 500
	fake := &fakeVerification{clk: e.clock, perKey: map[domain.Key]int{}, failures: map[domain.Key]int{}, dues: map[domain.Key]time.Time{}}
	for i := range n {
		due := T0.Add(time.Duration(i%50) * time.Second)
		d := mustSchedule(t, e.Store, fmt.Sprintf("o%03d", i), 1, due)
		fake.dues[d.Key] = due
	}
	// Nothing is due at T0-1s; then time moves on in steps while the sweepers run.
	e.clock.Set(T0.Add(-time.Second))
	mu := &sync.Mutex{}
	fired := map[domain.Key]int{}
	runCtx, cancelRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []Store{e.Store, e.Replica} {
		// The lease is far longer than the test can take, so a second call for one timer can only come
		// from two sweepers holding it at once, never from a lease running out.
		sw := &sweeper.Sweeper{Store: countingStore{Store: s, mu: mu, fired: fired}, Verification: fake, Clock: e.clock,
			Log: zap.NewNop(), Interval: 5 * time.Millisecond, Batch: 37, Concurrency: 8, Lease: 24 * time.Hour}
		wg.Go(func() { _ = sw.Run(runCtx) })
	}
	var firedCount int
	stop := time.Now().Add(30 * time.Second)
	for time.Now().Before(stop) {
		if firedCount = len(listAll(t, e.Store, domain.Fired, pagetoken.MaxSize)); firedCount == n {
			break
		}
		e.clock.Advance(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	cancelRun()
	wg.Wait()
	if firedCount != n {
		t.Fatalf("FIRED %d, want %d", firedCount, n)
	}
	var failed int
	for k, due := range fake.dues {
		if fired[k] != 1 {
			t.Fatalf("%v fired %d times", k, fired[k])
		}
		if calls, want := fake.perKey[k], 1+fake.failures[k]; calls != want {
			t.Fatalf("%v: %d close calls, want %d (1 + %d injected failures)", k, calls, want, fake.failures[k])
		}
		failed += fake.failures[k]
		if d := mustGet(t, e.Store, k); d.Attempts != int32(1+fake.failures[k]) || !d.Closed || d.FiredAt.Before(due) {
			t.Fatalf("%v after firing: %+v", k, d)
		}
	}
	if failed == 0 {
		t.Fatal("no failure injected: the test did not exercise retries")
	}
	if len(fake.early) != 0 {
		t.Fatalf("%d calls before the due time, e.g. %v", len(fake.early), fake.early[0])
	}
}

// MarkFiredBatch fires each timer of a batch on its own terms: only a pending timer still held by the
// claim that counted its attempts fires; a stale claim, a cancelled timer, an unknown key and a
// repeated key change nothing, and the others of the batch fire all the same.
func testMarkFiredBatch(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.Store
	for i := range 6 {
		mustSchedule(t, s, fmt.Sprintf("o%d", i), 1, T0)
	}
	claimed, err := s.Claim(ctx, T0, 10, time.Minute)
	if err != nil || len(claimed) != 6 {
		t.Fatalf("claimed %d, %v", len(claimed), err)
	}
	// o1 is cancelled meanwhile; o2's lease runs out and another claim takes it (attempts 2).
	if _, err := s.Cancel(ctx, "c1", &deadlinev1.CancelDeadlineRequest{}, claimed[1].Key); err != nil {
		t.Fatal(err)
	}
	if fired, err := s.MarkFiredBatch(ctx, nil); err != nil || len(fired) != 0 {
		t.Fatalf("empty batch: %v, %v", fired, err)
	}
	fired, err := s.MarkFiredBatch(ctx, []domain.Firing{
		{Key: claimed[0].Key, Attempts: 1, At: T0.Add(time.Second), Closed: true},
		{Key: claimed[1].Key, Attempts: 1, At: T0.Add(time.Second), Closed: true},
		{Key: claimed[2].Key, Attempts: 2, At: T0.Add(time.Second), Closed: true}, // not this claim's
		{Key: key("nope", 1), Attempts: 1, At: T0, Closed: true},
		{Key: claimed[3].Key, Attempts: 1, At: T0.Add(2 * time.Second), Closed: false},
		{Key: claimed[3].Key, Attempts: 1, At: T0.Add(3 * time.Second), Closed: true}, // repeated
		{Key: claimed[4].Key, Attempts: 1, At: T0.Add(1500 * time.Nanosecond), Closed: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := []bool{true, false, false, false, true, false, true}; fmt.Sprint(fired) != fmt.Sprint(want) {
		t.Fatalf("fired %v, want %v", fired, want)
	}
	want := map[int]domain.Deadline{
		0: {State: domain.Fired, Closed: true, FiredAt: T0.Add(time.Second), Attempts: 1},
		1: {State: domain.Cancelled, Attempts: 1},
		2: {State: domain.Pending, Attempts: 1},
		3: {State: domain.Fired, Closed: false, FiredAt: T0.Add(2 * time.Second), Attempts: 1},
		4: {State: domain.Fired, Closed: true, FiredAt: T0.Add(time.Microsecond), Attempts: 1},
		5: {State: domain.Pending, Attempts: 1},
	}
	for i, w := range want {
		d := mustGet(t, s, claimed[i].Key)
		if d.State != w.State || d.Closed != w.Closed || !d.FiredAt.Equal(w.FiredAt) || d.Attempts != w.Attempts {
			t.Errorf("%s after the batch: %+v, want %+v", claimed[i].OrderID, d, w)
		}
	}
	// A second recording of the same batch changes nothing.
	fired, err = s.MarkFiredBatch(ctx, []domain.Firing{{Key: claimed[0].Key, Attempts: 1, At: T0.Add(time.Hour), Closed: false}})
	if err != nil || fired[0] {
		t.Fatalf("fired twice: %v, %v", fired, err)
	}
	if d := mustGet(t, s, claimed[0].Key); !d.FiredAt.Equal(T0.Add(time.Second)) || !d.Closed {
		t.Fatalf("re-recorded: %+v", d)
	}
	// Through the other handle, the single-timer MarkFired agrees.
	if ok, err := e.Replica.MarkFired(ctx, claimed[5].Key, 1, T0, true); !ok || err != nil {
		t.Fatalf("MarkFired: %v, %v", ok, err)
	}
}

// Batches racing cancels on other handles: each timer ends either FIRED by exactly one batch or
// CANCELLED, never both, and a batch's report matches what it did.
func testMarkFiredBatchRacesCancel(t *testing.T, e *env) {
	ctx := context.Background()
	const n = 60
	for i := range n {
		mustSchedule(t, e.Store, fmt.Sprintf("r%02d", i), 1, T0)
	}
	claimed, err := e.Store.Claim(ctx, T0, n, time.Minute)
	if err != nil || len(claimed) != n {
		t.Fatalf("claimed %d, %v", len(claimed), err)
	}
	fs := make([]domain.Firing, n)
	for i, d := range claimed {
		fs[i] = domain.Firing{Key: d.Key, Attempts: d.Attempts, At: T0, Closed: true}
	}
	var wg sync.WaitGroup
	results := make([][]bool, 2)
	for j, s := range []Store{e.Store, e.Replica} {
		wg.Go(func() {
			fired, err := s.MarkFiredBatch(ctx, fs)
			if err != nil {
				t.Error(err)
			}
			results[j] = fired
		})
	}
	for i := 0; i < n; i += 3 {
		wg.Go(func() {
			if _, err := e.Replica.Cancel(ctx, fmt.Sprintf("c%d", i), &deadlinev1.CancelDeadlineRequest{}, claimed[i].Key); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, d := range claimed {
		got := mustGet(t, e.Store, d.Key)
		fired := 0
		for _, r := range results {
			if r[i] {
				fired++
			}
		}
		switch {
		case got.State == domain.Fired && fired == 1:
		case got.State == domain.Cancelled && fired == 0 && i%3 == 0:
		default:
			t.Errorf("%s: state %s, reported fired by %d batches", d.OrderID, got.State, fired)
		}
	}
}
