package domain

import "testing"

// A noon resend timer is born cancelled beside a deadline that is no longer pending, or a newer
// submission; it is pending beside its own pending deadline, and a deadline never looks at noon timers.
func TestInsertNoonTimer(t *testing.T) {
	t.Parallel()
	k := Key{"o", 2, KindNoonResend}
	timer := func(k Key, s State) Deadline {
		d := New(k, t0, t0)
		d.State = s
		return d
	}
	cases := []struct {
		name   string
		others []Deadline
		want   State
	}{
		{"alone (its deadline not scheduled yet)", nil, Pending},
		{"beside its pending deadline", []Deadline{timer(k.Close(), Pending)}, Pending},
		{"its deadline cancelled", []Deadline{timer(k.Close(), Cancelled)}, Cancelled},
		{"its deadline fired", []Deadline{timer(k.Close(), Fired)}, Cancelled},
		{"an older submission's deadline decided", []Deadline{timer(Key{"o", 1, KindClose}, Fired)}, Pending},
		{"a newer submission", []Deadline{timer(Key{"o", 3, KindClose}, Pending)}, Cancelled},
	}
	for _, c := range cases {
		if d, _ := Insert(New(k, t0, t0), c.others); d.State != c.want {
			t.Errorf("%s: %s, want %s", c.name, d.State, c.want)
		}
	}
	if d, _ := Insert(New(k.Close(), t0, t0), []Deadline{timer(k, Cancelled)}); d.State != Pending {
		t.Errorf("a deadline beside a cancelled noon timer: %s", d.State)
	}
	if _, sup := Insert(New(Key{"o", 3, KindClose}, t0, t0), []Deadline{timer(k, Pending)}); len(sup) != 1 || sup[0].Key != k || sup[0].State != Cancelled {
		t.Errorf("a newer submission did not supersede the older noon timer: %+v", sup)
	}
}
