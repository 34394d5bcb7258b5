package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

func testScheduleIdempotentAndConflict(t *testing.T, e *env) {
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
	if _, err := schedule(s, "r1", "o1", 2, due); errs.Reason(err) != errs.RequestIDReused.Reason {
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

func testScheduleConcurrentSameKey(t *testing.T, e *env) {
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
func testScheduleConcurrentSubmissions(t *testing.T, e *env) {
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
func testConcurrentSchedulesAndCancels(t *testing.T, e *env) {
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
				c.d, c.err = cancel(s, "cancel:"+order, key(order, 1))
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

func testNewerSubmissionCancelsOlder(t *testing.T, e *env) {
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
