package domain

import (
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestValidateSchedule(t *testing.T) {
	t.Parallel()
	long := string(make([]byte, MaxOrderIDLength+1))
	cases := []struct {
		name      string
		k         Key
		hasDue    bool
		due       time.Time
		wantField string
	}{
		{"ok", Key{"o1", 1}, true, t0, ""},
		{"empty order", Key{"", 1}, true, t0, "order_id"},
		{"long order", Key{long, 1}, true, t0, "order_id"},
		{"zero submission", Key{"o1", 0}, true, t0, "submission"},
		{"negative submission", Key{"o1", -2}, true, t0, "submission"},
		{"no due", Key{"o1", 1}, false, time.Time{}, "due_time"},
		{"epoch due", Key{"o1", 1}, true, time.Unix(0, 0), "due_time"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := ValidateSchedule(c.k, c.hasDue, c.due)
			if c.wantField == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			e, ok := err.(*errs.Error)
			if !ok || e.Kind != errs.KindInvalidArgument || e.Field != c.wantField {
				t.Fatalf("got %v, want InvalidArgument on %s", err, c.wantField)
			}
		})
	}
}

func TestStateTransitions(t *testing.T) {
	t.Parallel()
	cases := []struct {
		from        State
		op          string
		wantState   State
		wantChanged bool
	}{
		{Pending, "cancel", Cancelled, true},
		{Cancelled, "cancel", Cancelled, false},
		{Fired, "cancel", Fired, false},
		{Pending, "fire", Fired, true},
		{Cancelled, "fire", Cancelled, false},
		{Fired, "fire", Fired, false},
	}
	for _, c := range cases {
		t.Run(string(c.from)+"/"+c.op, func(t *testing.T) {
			d := New(Key{"o", 1}, t0, t0.Add(-time.Hour), false)
			d.State = c.from
			var got Deadline
			var changed bool
			switch c.op {
			case "cancel":
				got, changed = Cancel(d)
			case "fire":
				got, changed = Fire(d, t0, true)
			}
			if got.State != c.wantState || changed != c.wantChanged {
				t.Fatalf("got %s changed=%v, want %s changed=%v", got.State, changed, c.wantState, c.wantChanged)
			}
			if c.op == "fire" && changed && (!got.FiredAt.Equal(t0) || !got.Closed) {
				t.Fatalf("fire did not record time and closed: %+v", got)
			}
		})
	}
	for _, s := range []State{Pending, Fired, Cancelled} {
		if s.Final() == (s == Pending) {
			t.Errorf("%s.Final() = %v", s, s.Final())
		}
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	due := t0.Add(123 * time.Nanosecond)
	d := New(Key{"o", 2}, due, t0.Add(-time.Hour), false)
	if d.State != Pending || !d.NextAttemptAt.Equal(d.DueAt) || !d.DueAt.Equal(t0) {
		t.Fatalf("new timer: %+v", d)
	}
	if d := New(Key{"o", 1}, due, t0, true); d.State != Cancelled {
		t.Fatalf("superseded submission should start cancelled, got %s", d.State)
	}
}

func TestReschedule(t *testing.T) {
	t.Parallel()
	existing := New(Key{"o", 1}, t0, t0.Add(-time.Hour), false)
	cases := []struct {
		name    string
		due     time.Time
		wantErr string
	}{
		{"same", t0, ""},
		{"same below a microsecond", t0.Add(500 * time.Nanosecond), ""},
		{"different", t0.Add(time.Second), ReasonConflict},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Reschedule(existing, c.due)
			if errs.Reason(err) != c.wantErr {
				t.Fatalf("err %v, want reason %q", err, c.wantErr)
			}
			if err == nil && got != existing {
				t.Fatalf("repeat changed the timer")
			}
		})
	}
}

func TestSupersedes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		sub   int32
		other Deadline
		want  bool
	}{
		{2, Deadline{Key: Key{"o", 1}, State: Pending}, true},
		{2, Deadline{Key: Key{"o", 1}, State: Fired}, false},
		{2, Deadline{Key: Key{"o", 1}, State: Cancelled}, false},
		{2, Deadline{Key: Key{"o", 2}, State: Pending}, false},
		{2, Deadline{Key: Key{"o", 3}, State: Pending}, false},
	}
	for _, c := range cases {
		if got := Supersedes(c.sub, c.other); got != c.want {
			t.Errorf("Supersedes(%d, %+v) = %v", c.sub, c.other, got)
		}
	}
}

func TestClassifyAndNextAttempt(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		ok      bool
		reason  string
		now     time.Time
		backoff time.Duration
		want    Outcome
		next    time.Time
	}{
		{"ok", true, "", t0, 0, OutcomeFired, time.Time{}},
		{"not reached at due", false, "DEADLINE_NOT_REACHED", t0, time.Second, OutcomeNotReached, t0.Add(NotReachedDelay)},
		{"not reached after due", false, "DEADLINE_NOT_REACHED", t0.Add(time.Second), time.Second, OutcomeNotReached, t0.Add(time.Second + NotReachedDelay)},
		{"not reached before due (clock skew)", false, "DEADLINE_NOT_REACHED", t0.Add(-time.Minute), time.Second, OutcomeNotReached, t0.Add(NotReachedDelay)},
		{"unavailable", false, "", t0.Add(time.Second), 400 * time.Millisecond, OutcomeRetry, t0.Add(1400 * time.Millisecond)},
		{"session not found", false, "SESSION_NOT_FOUND", t0, 800 * time.Millisecond, OutcomeRetry, t0.Add(800 * time.Millisecond)},
		{"retry never before due", false, "", t0.Add(-time.Hour), time.Second, OutcomeRetry, t0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Classify(c.ok, c.reason)
			if o != c.want {
				t.Fatalf("Classify = %v, want %v", o, c.want)
			}
			if o == OutcomeFired {
				return
			}
			if got := NextAttempt(o, t0, c.now, c.backoff); !got.Equal(c.next) {
				t.Fatalf("NextAttempt = %v, want %v", got, c.next)
			}
		})
	}
}

func TestPageSize(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in      int32
		want    int
		wantErr bool
	}{{0, DefaultPageSize, false}, {1, 1, false}, {200, 200, false}, {201, MaxPageSize, false}, {-1, 0, true}}
	for _, c := range cases {
		got, err := PageSize(c.in)
		if (err != nil) != c.wantErr || got != c.want {
			t.Errorf("PageSize(%d) = %d, %v", c.in, got, err)
		}
	}
}
