package domain

import (
	"fmt"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/orderid"
)

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func TestValidateSchedule(t *testing.T) {
	t.Parallel()
	long := string(make([]byte, orderid.MaxLength+1))
	cases := []struct {
		name      string
		k         Key
		hasDue    bool
		due       time.Time
		wantField string
	}{
		{"ok", Key{"o1", 1, KindClose}, true, t0, ""},
		{"empty order", Key{"", 1, KindClose}, true, t0, "order_id"},
		{"long order", Key{long, 1, KindClose}, true, t0, "order_id"},
		{"zero submission", Key{"o1", 0, KindClose}, true, t0, "submission"},
		{"negative submission", Key{"o1", -2, KindClose}, true, t0, "submission"},
		{"no due", Key{"o1", 1, KindClose}, false, time.Time{}, "due_time"},
		{"epoch due", Key{"o1", 1, KindClose}, true, time.Unix(0, 0), "due_time"},
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
		attempts    int32 // the claim token given to fire/rearm; the timer has Attempts 1
		wantState   State
		wantChanged bool
	}{
		{Pending, "cancel", 1, Cancelled, true},
		{Cancelled, "cancel", 1, Cancelled, false},
		{Fired, "cancel", 1, Fired, false},
		{Pending, "fire", 1, Fired, true},
		{Pending, "fire", 0, Pending, false}, // a stale claim
		{Cancelled, "fire", 1, Cancelled, false},
		{Fired, "fire", 1, Fired, false},
		{Pending, "rearm", 1, Pending, true},
		{Pending, "rearm", 2, Pending, false},
		{Cancelled, "rearm", 1, Cancelled, false},
		{Fired, "rearm", 1, Fired, false},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%s/%s/%d", c.from, c.op, c.attempts), func(t *testing.T) {
			d := New(Key{"o", 1, KindClose}, t0, t0.Add(-time.Hour))
			d.State, d.Attempts = c.from, 1
			var got Deadline
			var changed bool
			switch c.op {
			case "cancel":
				got, changed = Cancel(d)
			case "fire":
				got, changed = Fire(d, c.attempts, t0, true)
			case "rearm":
				var err error
				if got, changed, err = Rearm(d, c.attempts, t0.Add(time.Minute), "x"); err != nil {
					t.Fatal(err)
				}
			}
			if got.State != c.wantState || changed != c.wantChanged {
				t.Fatalf("got %s changed=%v, want %s changed=%v", got.State, changed, c.wantState, c.wantChanged)
			}
			if !changed && got != d {
				t.Fatalf("unchanged timer was modified: %+v", got)
			}
			switch {
			case c.op == "fire" && changed && (!got.FiredAt.Equal(t0) || !got.Closed):
				t.Fatalf("fire did not record time and closed: %+v", got)
			case c.op == "rearm" && changed && (!got.NextAttemptAt.Equal(t0.Add(time.Minute)) || got.LastError != "x"):
				t.Fatalf("rearm did not record next attempt and error: %+v", got)
			}
		})
	}
}

func TestRearmNeverBeforeDue(t *testing.T) {
	t.Parallel()
	d := New(Key{"o", 1, KindClose}, t0, t0.Add(-time.Hour))
	if _, _, err := Rearm(d, 0, t0.Add(-time.Microsecond), "x"); err == nil {
		t.Fatal("re-armed before the due time")
	}
	if got, ok, err := Rearm(d, 0, t0, "x"); err != nil || !ok || !got.NextAttemptAt.Equal(t0) {
		t.Fatalf("re-arm at the due time: %+v %v %v", got, ok, err)
	}
}

func TestClaim(t *testing.T) {
	t.Parallel()
	d := New(Key{"o", 1, KindClose}, t0, t0.Add(-time.Hour))
	cases := []struct {
		name string
		mod  func(*Deadline)
		now  time.Time
		want bool
	}{
		{"due", func(*Deadline) {}, t0, true},
		{"before due", func(*Deadline) {}, t0.Add(-time.Microsecond), false},
		{"leased", func(d *Deadline) { d.NextAttemptAt = t0.Add(time.Second) }, t0, false},
		{"lease over", func(d *Deadline) { d.NextAttemptAt = t0.Add(time.Second) }, t0.Add(time.Second), true},
		{"next attempt before due (never stored) still waits for due", func(d *Deadline) { d.NextAttemptAt = t0.Add(-time.Hour) }, t0.Add(-time.Second), false},
		{"fired", func(d *Deadline) { d.State = Fired }, t0, false},
		{"cancelled", func(d *Deadline) { d.State = Cancelled }, t0, false},
	}
	for _, c := range cases {
		x := d
		c.mod(&x)
		if got := Claimable(x, c.now); got != c.want {
			t.Errorf("%s: Claimable = %v", c.name, got)
		}
	}
	c := Claim(d, t0.Add(time.Nanosecond), time.Minute)
	if c.Attempts != 1 || !c.NextAttemptAt.Equal(t0.Add(time.Minute)) || Claimable(c, t0.Add(time.Minute-time.Microsecond)) {
		t.Fatalf("claimed %+v", c)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	due := t0.Add(123 * time.Nanosecond)
	d := New(Key{"o", 2, KindClose}, due, t0.Add(-time.Hour))
	if d.State != Pending || !d.NextAttemptAt.Equal(d.DueAt) || !d.DueAt.Equal(t0) {
		t.Fatalf("new timer: %+v", d)
	}
	p := Placeholder(Key{"o", 3, KindClose}, due)
	if p.State != Cancelled || !p.DueAt.Equal(t0) || !p.NextAttemptAt.Equal(t0) || !p.CreatedAt.Equal(t0) {
		t.Fatalf("placeholder: %+v", p)
	}
}

func TestInsert(t *testing.T) {
	t.Parallel()
	timer := func(sub int32, s State) Deadline {
		d := New(Key{"o", sub, KindClose}, t0, t0)
		d.State = s
		return d
	}
	cases := []struct {
		name           string
		sub            int32
		others         []Deadline
		wantState      State
		wantSuperseded []int32
	}{
		{"first", 1, nil, Pending, nil},
		{"newer cancels older pending", 3, []Deadline{timer(1, Cancelled), timer(2, Pending)}, Pending, []int32{2}},
		{"older fired or cancelled untouched", 3, []Deadline{timer(1, Fired), timer(2, Cancelled)}, Pending, nil},
		{"late older submission starts cancelled", 2, []Deadline{timer(1, Cancelled), timer(3, Pending)}, Cancelled, nil},
		{"late older still supersedes an even older pending", 2, []Deadline{timer(1, Pending), timer(3, Pending)}, Cancelled, []int32{1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, sup := Insert(New(Key{"o", c.sub, KindClose}, t0, t0), c.others)
			if d.State != c.wantState {
				t.Fatalf("state %s, want %s", d.State, c.wantState)
			}
			var subs []int32
			for _, s := range sup {
				if s.State != Cancelled {
					t.Fatalf("superseded %d left %s", s.Submission, s.State)
				}
				subs = append(subs, s.Submission)
			}
			if fmt.Sprint(subs) != fmt.Sprint(c.wantSuperseded) {
				t.Fatalf("superseded %v, want %v", subs, c.wantSuperseded)
			}
		})
	}
}

func TestReschedule(t *testing.T) {
	t.Parallel()
	pending := New(Key{"o", 1, KindClose}, t0, t0.Add(-time.Hour))
	placeholder := Placeholder(Key{"o", 1, KindClose}, t0.Add(-time.Hour))
	cases := []struct {
		name     string
		existing Deadline
		due      time.Time
		wantErr  string
	}{
		{"same", pending, t0, ""},
		{"same below a microsecond", pending, t0.Add(500 * time.Nanosecond), ""},
		{"different", pending, t0.Add(time.Second), ReasonConflict},
		{"cancel overtook the schedule", placeholder, t0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := Reschedule(c.existing, c.due)
			if errs.Reason(err) != c.wantErr {
				t.Fatalf("err %v, want reason %q", err, c.wantErr)
			}
			if err == nil && got != c.existing {
				t.Fatalf("repeat changed the timer")
			}
		})
	}
}

func TestPositionAfter(t *testing.T) {
	t.Parallel()
	last := Deadline{Key: Key{"o", 2, KindClose}, DueAt: t0}
	p := PositionOf(last)
	if p.After(last) || !p.After(Deadline{Key: Key{"o", 3, KindClose}, DueAt: t0}) || !p.After(Deadline{Key: Key{"a", 1, KindClose}, DueAt: t0.Add(time.Microsecond)}) ||
		p.After(Deadline{Key: Key{"p", 1, KindClose}, DueAt: t0.Add(-time.Microsecond)}) {
		t.Fatalf("position %+v", p)
	}
}

func TestSupersedes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		sub   int32
		other Deadline
		want  bool
	}{
		{2, Deadline{Key: Key{"o", 1, KindClose}, State: Pending}, true},
		{2, Deadline{Key: Key{"o", 1, KindClose}, State: Fired}, false},
		{2, Deadline{Key: Key{"o", 1, KindClose}, State: Cancelled}, false},
		{2, Deadline{Key: Key{"o", 2, KindClose}, State: Pending}, false},
		{2, Deadline{Key: Key{"o", 3, KindClose}, State: Pending}, false},
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
		name       string
		ok         bool
		notReached bool
		now        time.Time
		backoff    time.Duration
		want       Outcome
		next       time.Time
	}{
		{"ok", true, false, t0, 0, OutcomeFired, time.Time{}},
		{"not reached at due", false, true, t0, time.Second, OutcomeNotReached, t0.Add(NotReachedDelay)},
		{"not reached after due", false, true, t0.Add(time.Second), time.Second, OutcomeNotReached, t0.Add(time.Second + NotReachedDelay)},
		{"not reached before due (clock skew)", false, true, t0.Add(-time.Minute), time.Second, OutcomeNotReached, t0.Add(NotReachedDelay)},
		{"unavailable", false, false, t0.Add(time.Second), 400 * time.Millisecond, OutcomeRetry, t0.Add(1400 * time.Millisecond)},
		{"session not found", false, false, t0, 800 * time.Millisecond, OutcomeRetry, t0.Add(800 * time.Millisecond)},
		{"retry never before due", false, false, t0.Add(-time.Hour), time.Second, OutcomeRetry, t0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Classify(c.ok, c.notReached)
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
