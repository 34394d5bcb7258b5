// Package storetest is the behaviour suite every deadline storage engine must pass: the PostgreSQL
// store and the memory engine run the same tests, through the interfaces the handlers and the sweeper
// use, so the two cannot drift apart. Concurrency tests are here too: the memory engine must be just
// as exact as row locks.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/pagetoken"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
	"github.com/icpverify/icpverify/services/deadline/internal/grpcapi"
	"github.com/icpverify/icpverify/services/deadline/internal/sweeper"
)

// Store is what an engine offers: the handlers' and the sweeper's interfaces, plus GetKey for tests.
type Store interface {
	grpcapi.Store
	sweeper.Store
	GetKey(ctx context.Context, k domain.Key) (domain.Deadline, error)
	// MarkFired is MarkFiredBatch of one firing.
	MarkFired(ctx context.Context, k domain.Key, attempts int32, now time.Time, closed bool) (bool, error)
}

// Engine is one storage engine under test.
type Engine struct {
	Store Store
	// Replica is a second handle on the same data, as another replica of the service has: its own
	// connection pool on PostgreSQL, the same store in memory.
	Replica Store
}

// T0 is the fake clock's start in every test.
var T0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// Run runs the whole suite against the engine newEngine builds (a fresh, empty one per test).
func Run(t *testing.T, newEngine func(t *testing.T, clk *clock.Fake) Engine) {
	tests := []struct {
		name string
		fn   func(t *testing.T, e Engine, clk *clock.Fake)
	}{
		{"ScheduleIdempotentAndConflict", testScheduleIdempotentAndConflict},
		{"ScheduleConcurrentSameKey", testScheduleConcurrentSameKey},
		{"ScheduleConcurrentSubmissions", testScheduleConcurrentSubmissions},
		{"NewerSubmissionCancelsOlder", testNewerSubmissionCancelsOlder},
		{"Cancel", testCancel},
		{"ConcurrentSchedulesAndCancels", testConcurrentSchedulesAndCancels},
		{"CancelOvertakesSchedule", testCancelOvertakesSchedule},
		{"ClaimHonoursNowAndLease", testClaimHonoursNowAndLease},
		{"ConcurrentClaimsDisjoint", testConcurrentClaimsDisjoint},
		{"MarkFiredBatch", testMarkFiredBatch},
		{"MarkFiredBatchRacesCancel", testMarkFiredBatchRacesCancel},
		{"List", testList},
		{"TwoSweepersFireEachTimerOnce", testTwoSweepersFireEachTimerOnce},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			clk := clock.NewFake(T0)
			tc.fn(t, newEngine(t, clk), clk)
		})
	}
}

func key(order string, sub int32) domain.Key { return domain.Key{OrderID: order, Submission: sub} }

func schedule(s Store, reqID, order string, sub int32, due time.Time) (domain.Deadline, error) {
	req := &deadlinev1.ScheduleDeadlineRequest{RequestId: reqID, OrderId: order, Submission: sub}
	return s.Schedule(context.Background(), T0, reqID, req, key(order, sub), due)
}

func mustSchedule(t *testing.T, s Store, order string, sub int32, due time.Time) domain.Deadline {
	t.Helper()
	d, err := schedule(s, "", order, sub, due)
	if err != nil {
		t.Fatalf("schedule %s/%d: %v", order, sub, err)
	}
	return d
}

func cancel(s Store, now time.Time, reqID string, k domain.Key) (domain.Deadline, error) {
	req := &deadlinev1.CancelDeadlineRequest{RequestId: reqID, OrderId: k.OrderID, Submission: k.Submission}
	return s.Cancel(context.Background(), now, reqID, req, k)
}

func mustGet(t *testing.T, s Store, k domain.Key) domain.Deadline {
	t.Helper()
	d, err := s.GetKey(context.Background(), k)
	if err != nil {
		t.Fatalf("get %v: %v", k, err)
	}
	return d
}

// listAll pages through every timer in state ("" = all).
func listAll(t *testing.T, s Store, state domain.State, pageSize int) []domain.Deadline {
	t.Helper()
	var all []domain.Deadline
	token := ""
	for {
		page, next, err := s.List(context.Background(), state, pageSize, token)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if next == "" {
			return all
		}
		token = next
	}
}

func testScheduleIdempotentAndConflict(t *testing.T, e Engine, _ *clock.Fake) {
	s := e.Store
	due := T0.Add(24 * time.Hour)
	d, err := schedule(s, "r1", "o1", 1, due)
	if err != nil {
		t.Fatal(err)
	}
	if d.State != domain.Pending || !d.DueAt.Equal(due) {
		t.Fatalf("scheduled %+v", d)
	}
	// Same business key, another request_id: the existing timer.
	again, err := schedule(s, "r2", "o1", 1, due)
	if err != nil || again.State != domain.Pending || !again.DueAt.Equal(due) {
		t.Fatalf("repeat: %+v %v", again, err)
	}
	// Same key, different due time: conflict, and nothing changed.
	if _, err := schedule(s, "r3", "o1", 1, due.Add(time.Minute)); errs.Reason(err) != domain.ReasonConflict {
		t.Fatalf("conflict: got %v", err)
	}
	// Same request_id, different request: refused.
	if _, err := schedule(s, "r1", "o1", 2, due); errs.Reason(err) != "REQUEST_ID_REUSED" {
		t.Fatalf("reused request id: got %v", err)
	}
	// The refused request_id was not remembered with a failed answer: r3 runs again.
	if _, err := schedule(s, "r3", "o1", 1, due); err != nil {
		t.Fatalf("r3 after a refusal: %v", err)
	}
	got := mustGet(t, s, key("o1", 1))
	if !got.NextAttemptAt.Equal(due) || got.Attempts != 0 || !got.DueAt.Equal(due) {
		t.Fatalf("stored %+v", got)
	}
	if _, err := s.GetKey(context.Background(), key("o1", 2)); errs.Reason(err) != domain.ReasonNotFound {
		t.Fatalf("o1/2: %v", err)
	}
}

func testScheduleConcurrentSameKey(t *testing.T, e Engine, _ *clock.Fake) {
	due := T0.Add(time.Hour)
	var wg sync.WaitGroup
	errc := make(chan error, 20)
	for i := range 20 {
		s := e.Store
		if i%2 == 1 {
			s = e.Replica
		}
		wg.Go(func() {
			_, err := schedule(s, fmt.Sprintf("r%d", i%4), "o1", 1, due)
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
	if all := listAll(t, e.Store, "", 50); len(all) != 1 || all[0].State != domain.Pending {
		t.Fatalf("timers %+v", all)
	}
}

// Submissions of one order scheduled at once, delivered in any order: only the newest stays pending.
func testScheduleConcurrentSubmissions(t *testing.T, e Engine, _ *clock.Fake) {
	const subs = 8
	for round := range 5 {
		order := fmt.Sprintf("o%d", round)
		var wg sync.WaitGroup
		for sub := int32(1); sub <= subs; sub++ {
			s := e.Store
			if sub%2 == 0 {
				s = e.Replica
			}
			wg.Go(func() {
				if _, err := schedule(s, fmt.Sprintf("%s-%d", order, sub), order, sub, T0.Add(time.Hour)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for sub := int32(1); sub <= subs; sub++ {
			want := domain.Cancelled
			if sub == subs {
				want = domain.Pending
			}
			if d := mustGet(t, e.Store, key(order, sub)); d.State != want {
				t.Fatalf("%s/%d is %s, want %s", order, sub, d.State, want)
			}
		}
	}
}

// testConcurrentSchedulesAndCancels fires the mix the outbox relays deliver at once (the PostgreSQL
// engine serves it in batches), on two replicas: schedules of 40 orders, each twice with its request
// id, and cancels of every odd order racing its schedule. Whatever the interleaving, an even order
// ends PENDING at its due time, an odd one CANCELLED (a cancel that overtook the schedule leaves a
// placeholder the schedule then returns), every repeat answers what its first call answered, and a
// schedule with another due time for an armed timer is refused.
func testConcurrentSchedulesAndCancels(t *testing.T, e Engine, _ *clock.Fake) {
	const n = 40
	due := func(i int) time.Time { return T0.Add(time.Duration(i+1) * time.Minute) }
	type call struct {
		order  int
		cancel bool
		d      domain.Deadline
		err    error
	}
	var calls []*call
	for i := range n {
		calls = append(calls, &call{order: i}, &call{order: i})
		if i%2 == 1 {
			calls = append(calls, &call{order: i, cancel: true}, &call{order: i, cancel: true})
		}
	}
	var wg sync.WaitGroup
	for j, c := range calls {
		s := e.Store
		if j%2 == 1 {
			s = e.Replica
		}
		wg.Go(func() {
			order := fmt.Sprintf("b%02d", c.order)
			if c.cancel {
				c.d, c.err = cancel(s, T0, "cancel:"+order, key(order, 1))
			} else {
				c.d, c.err = schedule(s, "schedule:"+order, order, 1, due(c.order))
			}
		})
	}
	wg.Wait()
	first := map[string]domain.Deadline{}
	for _, c := range calls {
		order := fmt.Sprintf("b%02d", c.order)
		if c.err != nil {
			t.Errorf("%s cancel=%v: %v", order, c.cancel, c.err)
			continue
		}
		id := fmt.Sprint(order, c.cancel)
		if f, ok := first[id]; ok && f != c.d {
			t.Errorf("%s cancel=%v: a repeat answered %+v, the first %+v", order, c.cancel, c.d, f)
		}
		first[id] = c.d
		if !c.cancel && c.order%2 == 0 && (c.d.State != domain.Pending || !c.d.DueAt.Equal(due(c.order))) {
			t.Errorf("%s: schedule answered %s due %v", order, c.d.State, c.d.DueAt)
		}
	}
	for i := range n {
		order := fmt.Sprintf("b%02d", i)
		d := mustGet(t, e.Store, key(order, 1))
		want := domain.Pending
		if i%2 == 1 {
			want = domain.Cancelled
		}
		if d.State != want {
			t.Errorf("%s ends %s, want %s", order, d.State, want)
		}
	}
	if _, err := schedule(e.Store, "again:b00", "b00", 1, due(5)); errs.Reason(err) != domain.ReasonConflict {
		t.Errorf("another due time for an armed timer: %v, want %s", err, domain.ReasonConflict)
	}
}

func testNewerSubmissionCancelsOlder(t *testing.T, e Engine, _ *clock.Fake) {
	s := e.Store
	mustSchedule(t, s, "o1", 1, T0.Add(time.Hour))
	mustSchedule(t, s, "other", 1, T0.Add(time.Hour))
	mustSchedule(t, s, "o1", 2, T0.Add(2*time.Hour))
	if old := mustGet(t, s, key("o1", 1)); old.State != domain.Cancelled {
		t.Fatalf("old submission %s, want CANCELLED", old.State)
	}
	if other := mustGet(t, s, key("other", 1)); other.State != domain.Pending {
		t.Fatalf("other order touched: %s", other.State)
	}
	latest, err := s.Get(context.Background(), "o1")
	if err != nil || latest.Submission != 2 || latest.State != domain.Pending {
		t.Fatalf("latest %+v %v", latest, err)
	}
	// A late delivery of an older submission is stored but never armed.
	if late := mustSchedule(t, s, "o3", 5, T0.Add(time.Hour)); late.State != domain.Pending {
		t.Fatal(late.State)
	}
	if d := mustSchedule(t, s, "o3", 4, T0.Add(time.Hour)); d.State != domain.Cancelled {
		t.Fatalf("superseded late schedule %s, want CANCELLED", d.State)
	}
	if d := mustGet(t, s, key("o3", 5)); d.State != domain.Pending {
		t.Fatalf("late older schedule touched the newer timer: %s", d.State)
	}
}

func testCancel(t *testing.T, e Engine, _ *clock.Fake) {
	s := e.Store
	ctx := context.Background()
	k := key("o1", 1)
	mustSchedule(t, s, "o1", 1, T0)
	d, err := cancel(s, T0, "c1", k)
	if err != nil || d.State != domain.Cancelled {
		t.Fatalf("cancel %+v %v", d, err)
	}
	if d, err := cancel(s, T0, "c2", k); err != nil || d.State != domain.Cancelled {
		t.Fatalf("cancel again %+v %v", d, err)
	}
	if d, err := cancel(s, T0, "c1", k); err != nil || d.State != domain.Cancelled {
		t.Fatalf("replay %+v %v", d, err)
	}
	// A fired timer is returned unchanged.
	k2 := key("o2", 1)
	mustSchedule(t, s, "o2", 1, T0)
	claimed, err := s.Claim(ctx, T0, 10, time.Minute)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim %v %v", claimed, err)
	}
	if ok, err := s.MarkFired(ctx, k2, claimed[0].Attempts, T0, true); !ok || err != nil {
		t.Fatalf("fire %v %v", ok, err)
	}
	if d, err := cancel(s, T0, "c3", k2); err != nil || d.State != domain.Fired || !d.Closed || !d.FiredAt.Equal(T0) {
		t.Fatalf("cancel fired %+v %v", d, err)
	}
	// Cancelled and fired timers are never claimed, and cancelling a fired one did not re-arm it.
	if claimed, _ := s.Claim(ctx, T0.Add(time.Hour), 10, time.Minute); len(claimed) != 0 {
		t.Fatalf("claimed %d cancelled/fired timers", len(claimed))
	}
	if _, ok, err := s.NextDue(ctx); ok || err != nil {
		t.Fatalf("NextDue with nothing pending: %v %v", ok, err)
	}
}

// A CancelDeadline that overtook its ScheduleDeadline in delivery answers OK with a CANCELLED
// placeholder, and the late schedule returns it instead of arming a timer for a decided order.
func testCancelOvertakesSchedule(t *testing.T, e Engine, _ *clock.Fake) {
	s := e.Store
	ctx := context.Background()
	k := key("o1", 2)
	older := mustSchedule(t, s, "o1", 1, T0.Add(time.Hour)) // still pending: submission 2's schedule is late
	now := T0.Add(time.Minute)
	d, err := cancel(s, now, "verification:cancel-deadline:o1:2", k)
	if err != nil || d.State != domain.Cancelled || d.Key != k || !d.DueAt.Equal(now) {
		t.Fatalf("cancel of an unknown submission: %+v %v", d, err)
	}
	// The cancel is proof that submission 2 exists, so submission 1 is superseded like by a schedule.
	if o := mustGet(t, s, older.Key); o.State != domain.Cancelled {
		t.Fatalf("older submission left %s", o.State)
	}
	if d, err := cancel(s, now.Add(time.Second), "another", k); err != nil || d.State != domain.Cancelled || !d.DueAt.Equal(now) {
		t.Fatalf("second cancel: %+v %v", d, err)
	}
	late, err := schedule(s, "filing:schedule-deadline:o1:2", "o1", 2, T0.Add(24*time.Hour))
	if err != nil || late.State != domain.Cancelled || !late.DueAt.Equal(now) {
		t.Fatalf("late schedule: %+v %v", late, err)
	}
	if got, err := s.Get(ctx, "o1"); err != nil || got.Submission != 2 || got.State != domain.Cancelled {
		t.Fatalf("get: %+v %v", got, err)
	}
	if l := listAll(t, s, domain.Cancelled, 50); len(l) != 2 {
		t.Fatalf("cancelled list %+v", l)
	}
	if l := listAll(t, s, domain.Pending, 50); len(l) != 0 {
		t.Fatalf("pending list %+v", l)
	}
	if claimed, err := s.Claim(ctx, T0.Add(48*time.Hour), 10, time.Minute); err != nil || len(claimed) != 0 {
		t.Fatalf("claimed %+v %v", claimed, err)
	}
}

func testClaimHonoursNowAndLease(t *testing.T, e Engine, _ *clock.Fake) {
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

func testConcurrentClaimsDisjoint(t *testing.T, e Engine, _ *clock.Fake) {
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

func testList(t *testing.T, e Engine, _ *clock.Fake) {
	s := e.Store
	ctx := context.Background()
	for i := range 7 {
		mustSchedule(t, s, fmt.Sprintf("o%d", 6-i), 1, T0.Add(time.Duration(i)*time.Minute))
	}
	mustSchedule(t, s, "o6", 2, T0.Add(time.Hour)) // cancels o6/1 (the soonest)
	// Same due time: by order id bytewise ("B" < "a"), then submission.
	mustSchedule(t, s, "a", 1, T0.Add(2*time.Hour))
	mustSchedule(t, s, "B", 1, T0.Add(2*time.Hour))
	all := listAll(t, s, "", 3)
	var got []string
	for _, d := range all {
		got = append(got, fmt.Sprintf("%s/%d", d.OrderID, d.Submission))
	}
	if want := "[o6/1 o5/1 o4/1 o3/1 o2/1 o1/1 o0/1 o6/2 B/1 a/1]"; fmt.Sprint(got) != want {
		t.Fatalf("list %v, want %s", got, want)
	}
	pending, next, err := s.List(ctx, domain.Pending, 50, "")
	if err != nil || len(pending) != 9 || next != "" {
		t.Fatalf("pending %d %q %v", len(pending), next, err)
	}
	if c := listAll(t, s, domain.Cancelled, 1); len(c) != 1 || c[0].Key != key("o6", 1) {
		t.Fatalf("cancelled %+v", c)
	}
	_, next, _ = s.List(ctx, domain.Pending, 2, "")
	if _, _, err := s.List(ctx, domain.Cancelled, 2, next); errs.Reason(err) != pagetoken.ReasonInvalidPageToken {
		t.Fatalf("token for another filter: %v", err)
	}
	if _, _, err := s.List(ctx, "", 2, "%%%"); errs.Reason(err) != pagetoken.ReasonInvalidPageToken {
		t.Fatalf("garbage token: %v", err)
	}
}

// fakeVerification answers CloseIfIncomplete and records, per timer, the calls, the failures it
// injected and any call before the due time.
type fakeVerification struct {
	clk      clock.Clock
	calls    atomic.Int64
	mu       sync.Mutex
	perKey   map[domain.Key]int
	failures map[domain.Key]int
	dues     map[domain.Key]time.Time
	early    []domain.Key
}

func (f *fakeVerification) CloseIfIncomplete(_ context.Context, req *verificationv1.CloseIfIncompleteRequest, _ ...grpc.CallOption) (*verificationv1.CloseIfIncompleteResponse, error) {
	k := key(req.GetOrderId(), req.GetSubmission())
	c := f.calls.Add(1)
	time.Sleep(time.Millisecond) // slow enough for the two sweepers to overlap
	f.mu.Lock()
	defer f.mu.Unlock()
	f.perKey[k]++
	if f.clk.Now().Before(f.dues[k]) {
		f.early = append(f.early, k)
	}
	if req.GetRequestId() != sweeper.RequestID(k) {
		return nil, status.Error(codes.InvalidArgument, "bad request id")
	}
	if c%17 == 0 {
		f.failures[k]++
		return nil, status.Error(codes.Unavailable, "flaky")
	}
	return &verificationv1.CloseIfIncompleteResponse{Closed: true}, nil
}

// countingStore counts successful firings per timer across sweepers.
type countingStore struct {
	sweeper.Store
	mu    *sync.Mutex
	fired map[domain.Key]int
}

func (c countingStore) MarkFiredBatch(ctx context.Context, fs []domain.Firing) ([]bool, error) {
	ok, err := c.Store.MarkFiredBatch(ctx, fs)
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, f := range fs {
		if err == nil && ok[i] {
			c.fired[f.Key]++
		}
	}
	return ok, err
}

// Two sweepers on two handles of one engine, with flaky close calls: every timer fires exactly once,
// verification is called once per timer plus once per injected failure (no duplicate call from two
// sweepers holding one timer), and never before the due time.
func testTwoSweepersFireEachTimerOnce(t *testing.T, e Engine, clk *clock.Fake) {
	const n = 500
	fake := &fakeVerification{clk: clk, perKey: map[domain.Key]int{}, failures: map[domain.Key]int{}, dues: map[domain.Key]time.Time{}}
	for i := range n {
		due := T0.Add(time.Duration(i%50) * time.Second)
		d := mustSchedule(t, e.Store, fmt.Sprintf("o%03d", i), 1, due)
		fake.dues[d.Key] = due
	}
	// Nothing is due at T0-1s; then time moves on in steps while the sweepers run.
	clk.Set(T0.Add(-time.Second))
	mu := &sync.Mutex{}
	fired := map[domain.Key]int{}
	runCtx, cancelRun := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, s := range []Store{e.Store, e.Replica} {
		// The lease is far longer than the test can take, so a second call for one timer can only come
		// from two sweepers holding it at once, never from a lease running out.
		sw := &sweeper.Sweeper{Store: countingStore{Store: s, mu: mu, fired: fired}, Verification: fake, Clock: clk,
			Log: zap.NewNop(), Interval: 5 * time.Millisecond, Batch: 37, Concurrency: 8, Lease: 24 * time.Hour}
		wg.Go(func() { _ = sw.Run(runCtx) })
	}
	var firedCount int
	stop := time.Now().Add(30 * time.Second)
	for time.Now().Before(stop) {
		if firedCount = len(listAll(t, e.Store, domain.Fired, pagetoken.MaxSize)); firedCount == n {
			break
		}
		clk.Advance(time.Second)
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
func testMarkFiredBatch(t *testing.T, e Engine, _ *clock.Fake) {
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
	if _, err := s.Cancel(ctx, T0, "c1", &deadlinev1.CancelDeadlineRequest{}, claimed[1].Key); err != nil {
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
func testMarkFiredBatchRacesCancel(t *testing.T, e Engine, _ *clock.Fake) {
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
			if _, err := e.Replica.Cancel(ctx, T0, fmt.Sprintf("c%d", i), &deadlinev1.CancelDeadlineRequest{}, claimed[i].Key); err != nil {
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
