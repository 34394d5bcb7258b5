package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

func testCancel(t *testing.T, e *env) {
	s := e.Store
	ctx := context.Background()
	k := key("o1", 1)
	mustSchedule(t, s, "o1", 1, T0)
	d, err := cancel(s, "c1", k)
	if err != nil || d.State != domain.Cancelled {
		t.Fatalf("cancel %+v %v", d, err)
	}
	if d, err := cancel(s, "c2", k); err != nil || d.State != domain.Cancelled {
		t.Fatalf("cancel again %+v %v", d, err)
	}
	if d, err := cancel(s, "c1", k); err != nil || d.State != domain.Cancelled {
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
	if d, err := cancel(s, "c3", k2); err != nil || d.State != domain.Fired || !d.Closed || !d.FiredAt.Equal(T0) {
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
func testCancelOvertakesSchedule(t *testing.T, e *env) {
	s := e.Store
	ctx := context.Background()
	k := key("o1", 2)
	older := mustSchedule(t, s, "o1", 1, T0.Add(time.Hour)) // still pending: submission 2's schedule is late
	now := T0.Add(time.Minute)
	e.clock.Set(now)
	d, err := cancel(s, "verification:cancel-deadline:o1:2", k)
	if err != nil || d.State != domain.Cancelled || d.Key != k || !d.DueAt.Equal(now) {
		t.Fatalf("cancel of an unknown submission: %+v %v", d, err)
	}
	// The cancel is proof that submission 2 exists, so submission 1 is superseded like by a schedule.
	if o := mustGet(t, s, older.Key); o.State != domain.Cancelled {
		t.Fatalf("older submission left %s", o.State)
	}
	e.clock.Advance(time.Second)
	if d, err := cancel(s, "another", k); err != nil || d.State != domain.Cancelled || !d.DueAt.Equal(now) {
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
