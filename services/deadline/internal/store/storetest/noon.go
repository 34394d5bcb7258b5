package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
	"github.com/icpverify/icpverify/services/deadline/internal/sweeper"
)

func scheduleNoon(s Store, reqID, order string, sub int32, at time.Time) (domain.Deadline, error) {
	req := &deadlinev1.ScheduleNoonResendRequest{RequestId: reqID, OrderId: order, Submission: sub}
	return s.ScheduleNoon(context.Background(), reqID, req, key(order, sub), at)
}

func mustScheduleNoon(t *testing.T, s Store, order string, sub int32, at time.Time) domain.Deadline {
	t.Helper()
	d, err := scheduleNoon(s, "", order, sub, at)
	if err != nil {
		t.Fatalf("schedule noon %s/%d: %v", order, sub, err)
	}
	return d
}

// A noon resend timer is a timer of its own kind beside the submission's deadline: idempotent, claimed
// and fired like it, and not in the deadline's Get and List.
func testNoonTimer(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.Store
	noonAt, due := T0.Add(2*time.Hour), T0.Add(24*time.Hour)
	close := mustSchedule(t, s, "o1", 1, due)
	n, err := scheduleNoon(s, "n1", "o1", 1, noonAt)
	if err != nil || n.Key != key("o1", 1).Noon() || n.State != domain.Pending || !n.DueAt.Equal(noonAt) {
		t.Fatalf("schedule noon: %+v %v", n, err)
	}
	if again, err := scheduleNoon(s, "n1", "o1", 1, noonAt); err != nil || again.Key != n.Key || !again.DueAt.Equal(noonAt) {
		t.Fatalf("replay: %+v %v", again, err)
	}
	if again, err := scheduleNoon(s, "n2", "o1", 1, noonAt); err != nil || again.Key != n.Key {
		t.Fatalf("a repeat with another request id: %+v %v", again, err)
	}
	if _, err := scheduleNoon(s, "n3", "o1", 1, noonAt.Add(time.Minute)); errs.Reason(err) != domain.ReasonConflict {
		t.Fatalf("another instant: %v, want %s", err, domain.ReasonConflict)
	}
	if d, err := s.Get(ctx, "o1"); err != nil || d.Key != close.Key || d.State != domain.Pending {
		t.Fatalf("Get answers the deadline: %+v %v", d, err)
	}
	if l := listAll(t, s, "", 10); len(l) != 1 || l[0].Key != close.Key {
		t.Fatalf("List shows the deadlines only: %+v", l)
	}
	if next, ok, err := s.NextDue(ctx); err != nil || !ok || !next.Equal(noonAt) {
		t.Fatalf("NextDue %v %v %v, want the noon timer's %v", next, ok, err, noonAt)
	}
	if claimed, _ := s.Claim(ctx, noonAt.Add(-time.Microsecond), 10, time.Minute); len(claimed) != 0 {
		t.Fatalf("claimed %d before the noon instant", len(claimed))
	}
	claimed, err := s.Claim(ctx, noonAt, 10, time.Minute)
	if err != nil || len(claimed) != 1 || claimed[0].Key != n.Key || claimed[0].Attempts != 1 {
		t.Fatalf("claim at noon: %+v %v", claimed, err)
	}
	if fired, err := s.MarkFiredBatch(ctx, []domain.Firing{{Key: n.Key, Attempts: 1, At: noonAt, Closed: true}}); err != nil || !fired[0] {
		t.Fatalf("fire noon %v %v", fired, err)
	}
	if d := mustGet(t, s, n.Key); d.State != domain.Fired || !d.Closed {
		t.Fatalf("noon after firing: %+v", d)
	}
	if d := mustGet(t, s, close.Key); d.State != domain.Pending || d.Attempts != 0 {
		t.Fatalf("the deadline changed with the noon timer: %+v", d)
	}
	// Both kinds claim and re-arm by their own keys.
	claimed, err = s.Claim(ctx, due, 10, time.Minute)
	if err != nil || len(claimed) != 1 || claimed[0].Key != close.Key {
		t.Fatalf("claim at the deadline: %+v %v", claimed, err)
	}
	if ok, err := s.Rearm(ctx, close.Key, 1, due.Add(time.Second), "x"); !ok || err != nil {
		t.Fatalf("rearm the deadline: %v %v", ok, err)
	}
	if d := mustGet(t, s, n.Key); d.State != domain.Fired || d.LastError != "" {
		t.Fatalf("re-arming the deadline touched the noon timer: %+v", d)
	}
}

// A noon resend timer never outlives its deadline: CancelDeadline cancels both; one scheduled after
// the deadline was cancelled or fired (or after a cancel that overtook both) is born cancelled; a
// newer submission supersedes an older one's.
func testNoonTimerFollowsItsDeadline(t *testing.T, e *env) {
	ctx := context.Background()
	s := e.Store
	noonAt, due := T0.Add(2*time.Hour), T0.Add(24*time.Hour)

	mustSchedule(t, s, "a", 1, due)
	mustScheduleNoon(t, s, "a", 1, noonAt)
	if d, err := cancel(s, "ca", key("a", 1)); err != nil || d.Key != key("a", 1) || d.State != domain.Cancelled {
		t.Fatalf("cancel: %+v %v", d, err)
	}
	if d := mustGet(t, s, key("a", 1).Noon()); d.State != domain.Cancelled {
		t.Fatalf("noon after CancelDeadline: %+v", d)
	}

	mustSchedule(t, s, "b", 1, due)
	if _, err := cancel(s, "cb", key("b", 1)); err != nil {
		t.Fatal(err)
	}
	if d := mustScheduleNoon(t, s, "b", 1, noonAt); d.State != domain.Cancelled {
		t.Fatalf("noon after its deadline was cancelled: %+v", d)
	}

	if _, err := cancel(s, "cc", key("c", 1)); err != nil { // the cancel overtook both schedules
		t.Fatal(err)
	}
	if d := mustScheduleNoon(t, s, "c", 1, noonAt); d.State != domain.Cancelled {
		t.Fatalf("noon after an overtaking cancel: %+v", d)
	}

	mustSchedule(t, s, "d", 1, T0)
	claimed, err := s.Claim(ctx, T0, 10, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim d: %+v %v", claimed, err)
	}
	if ok, err := s.MarkFired(ctx, key("d", 1), claimed[0].Attempts, T0, true); !ok || err != nil {
		t.Fatalf("fire d: %v %v", ok, err)
	}
	if d := mustScheduleNoon(t, s, "d", 1, T0.Add(-time.Hour)); d.State != domain.Cancelled {
		t.Fatalf("noon after its deadline fired: %+v", d)
	}

	mustSchedule(t, s, "e", 1, due)
	mustScheduleNoon(t, s, "e", 1, noonAt)
	mustSchedule(t, s, "e", 2, due.Add(time.Hour))
	if d := mustGet(t, s, key("e", 1).Noon()); d.State != domain.Cancelled {
		t.Fatalf("submission 1's noon after submission 2: %+v", d)
	}
	if d := mustScheduleNoon(t, s, "e", 1, noonAt); d.State != domain.Cancelled {
		t.Fatalf("a late noon schedule of a superseded submission: %+v", d)
	}
	if d := mustScheduleNoon(t, s, "e", 2, noonAt.Add(time.Hour)); d.State != domain.Pending {
		t.Fatalf("submission 2's noon: %+v", d)
	}
	claimed, err = s.Claim(ctx, due.Add(2*time.Hour), 100, time.Minute)
	keys := map[domain.Key]bool{}
	for _, d := range claimed {
		keys[d.Key] = true
	}
	if err != nil || len(claimed) != 2 || !keys[key("e", 2).Noon()] || !keys[key("e", 2)] {
		t.Fatalf("pending after all that: %+v %v; want e/2's noon timer and deadline only", claimed, err)
	}
}

// Two sweepers on one store fire every noon resend timer and every deadline exactly once, with one
// verification call each (plus the retries of injected failures), none early.
func testTwoSweepersFireEachNoonTimerOnce(t *testing.T, e *env) {
	const n = 150
	fake := &fakeVerification{clk: e.clock, perKey: map[domain.Key]int{}, failures: map[domain.Key]int{}, dues: map[domain.Key]time.Time{}}
	for i := range n {
		order := fmt.Sprintf("o%03d", i)
		noonAt := T0.Add(time.Duration(i%20) * time.Second)
		due := noonAt.Add(time.Duration(i%7+1) * time.Second)
		fake.dues[mustSchedule(t, e.Store, order, 1, due).Key] = due
		fake.dues[mustScheduleNoon(t, e.Store, order, 1, noonAt).Key] = noonAt
	}
	e.clock.Set(T0.Add(-time.Second))
	mu := &sync.Mutex{}
	fired := map[domain.Key]int{}
	runCtx, cancelRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []Store{e.Store, e.Replica} {
		sw := &sweeper.Sweeper{Store: countingStore{Store: s, mu: mu, fired: fired}, Verification: fake, Clock: e.clock,
			Log: zap.NewNop(), Interval: 5 * time.Millisecond, Batch: 23, Concurrency: 8, Lease: 24 * time.Hour}
		wg.Go(func() { _ = sw.Run(runCtx) })
	}
	stop := time.Now().Add(30 * time.Second)
	for time.Now().Before(stop) {
		if p, _, _ := e.Store.CountPending(context.Background(), T0); p == 0 {
			break
		}
		e.clock.Advance(time.Second)
		time.Sleep(20 * time.Millisecond)
	}
	cancelRun()
	wg.Wait()
	fake.mu.Lock()
	defer fake.mu.Unlock()
	for k := range fake.dues {
		if fired[k] != 1 {
			t.Fatalf("%v fired %d times", k, fired[k])
		}
		if calls, want := fake.perKey[k], 1+fake.failures[k]; calls != want {
			t.Fatalf("%v: %d calls, want %d (1 + %d injected failures)", k, calls, want, fake.failures[k])
		}
		if d := mustGet(t, e.Store, k); d.State != domain.Fired || !d.Closed {
			t.Fatalf("%v after firing: %+v", k, d)
		}
	}
	if len(fake.early) != 0 {
		t.Fatalf("%d calls before the due time, e.g. %v", len(fake.early), fake.early[0])
	}
}
