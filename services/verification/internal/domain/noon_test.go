package domain

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

func shanghai(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(NoonZone)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func TestNoonResendAt(t *testing.T) {
	sh := shanghai(t)
	rule := NoonRule{Enabled: true, Hour: 12, Zone: sh}
	at := func(y int, m time.Month, d, h, min int) time.Time { return time.Date(y, m, d, h, min, 0, 0, sh) }
	cases := []struct {
		name          string
		first, window time.Time
		rule          NoonRule
		want          time.Time // zero: none
	}{
		// 23:59 Beijing is 15:59 UTC: the next Beijing day is only one minute away.
		{"code at 23:59", at(2026, 12, 3, 23, 59), at(2026, 12, 4, 23, 59), rule, at(2026, 12, 4, 12, 0)},
		// 00:01 Beijing is still the previous day in UTC (16:01): the noon is that of the day after in
		// Beijing, 36 h later, after a 24 h window's end; a 48 h window sees it.
		{"code at 00:01, 24 h window", at(2026, 12, 4, 0, 1), at(2026, 12, 5, 0, 1), rule, time.Time{}},
		{"code at 00:01, 48 h window", at(2026, 12, 4, 0, 1), at(2026, 12, 6, 0, 1), rule, at(2026, 12, 5, 12, 0)},
		{"code at noon", at(2026, 12, 4, 12, 0), at(2026, 12, 5, 12, 0), rule, time.Time{}},          // due at the window's end: none
		{"window ends before noon", at(2026, 12, 4, 9, 0), at(2026, 12, 5, 9, 0), rule, time.Time{}}, // 09:00 next day < 12:00
		{"a minute before the window ends", at(2026, 12, 4, 12, 1), at(2026, 12, 5, 12, 1), rule, at(2026, 12, 5, 12, 0)},
		{"year end", at(2026, 12, 31, 20, 0), at(2027, 1, 1, 20, 0), rule, at(2027, 1, 1, 12, 0)},
		{"another hour", at(2026, 12, 4, 8, 0), at(2026, 12, 5, 8, 0), NoonRule{Enabled: true, Hour: 7, Zone: sh}, at(2026, 12, 5, 7, 0)},
		{"off", at(2026, 12, 4, 8, 0), at(2026, 12, 5, 8, 0), NoonRule{Hour: 12, Zone: sh}, time.Time{}},
		{"test delay", at(2026, 12, 4, 8, 0), at(2026, 12, 4, 8, 1), NoonRule{Enabled: true, Hour: 12, Delay: 30 * time.Second},
			at(2026, 12, 4, 8, 0).Add(30 * time.Second)},
	}
	for _, c := range cases {
		got, ok := NoonResendAt(c.first.UTC(), c.window.UTC(), c.rule)
		if ok != !c.want.IsZero() || !got.Equal(c.want) {
			t.Errorf("%s: got %v %v, want %v", c.name, got.In(sh), ok, c.want)
		}
		if ok && got.Location() != time.UTC {
			t.Errorf("%s: %v is not in UTC", c.name, got)
		}
	}
	if err := (NoonRule{Hour: 24}).Validate(); err == nil {
		t.Error("hour 24 accepted")
	}
	if err := (NoonRule{Hour: -1}).Validate(); err == nil {
		t.Error("hour -1 accepted")
	}
}

func TestDecideAutoResend(t *testing.T) {
	sh := shanghai(t)
	keys, _ := ParseKeys("k1:" + strings.Repeat("ab", 32))
	h, _ := NewHasher(keys)
	first := time.Date(2026, 12, 3, 15, 0, 0, 0, sh).UTC()
	noon := time.Date(2026, 12, 4, 12, 0, 0, 0, sh).UTC()
	rule := NoonRule{Enabled: true, Hour: 12, Zone: sh}
	limits := DefaultLimits
	newRec := func() *SessionRecord {
		rec := &SessionRecord{Session: Session{ID: "s1", State: SessionOpen, CreatedAt: first, DeadlineAt: first.Add(24 * time.Hour)}}
		for i, st := range []ChallengeState{ChallengePending, ChallengePassed, ChallengeLocked, ChallengePending} {
			c := Challenge{ID: VerifierID(i), VerifierID: VerifierID(i), State: st, Generation: 1, LastSentAt: first}
			c.CodeKeyID, c.CodeHash = h.HashCode(c.ID, "111111")
			rec.Challenges = append(rec.Challenges, c)
		}
		rec.Challenges[3].LastSentAt = noon.Add(-30 * time.Second) // a manual resend just before noon
		return rec
	}

	rec := newRec()
	if _, _, err := DecideAutoResend(noon.Add(-time.Second), rec, rule, limits, h, rand.Reader); errs.Reason(err) != ReasonDeadlineNotReached {
		t.Fatalf("a second early: %v, want %s", err, ReasonDeadlineNotReached)
	}
	if !rec.AutoResentAt.IsZero() || rec.Challenges[0].Generation != 1 {
		t.Fatal("an early call changed the session")
	}
	out, sent, err := DecideAutoResend(noon, rec, rule, limits, h, rand.Reader)
	if err != nil || out != AutoResendSent || len(sent) != 1 || sent[0].Index != 0 {
		t.Fatalf("at noon: %v %v %v; want one code, for v1 only (v2 passed, v3 locked, v4 has a fresh code)", out, sent, err)
	}
	c := rec.Challenges[0]
	if c.Generation != 2 || c.ResendsUsed != 0 || !c.LastSentAt.Equal(noon) || !rec.AutoResentAt.Equal(noon) {
		t.Fatalf("v1 after the noon resend: %+v, session marked %v", c, rec.AutoResentAt)
	}
	if !h.VerifyCode(c.CodeKeyID, c.CodeHash, c.ID, sent[0].Code) || h.VerifyCode(c.CodeKeyID, c.CodeHash, c.ID, "111111") {
		t.Fatal("the new code does not replace the old one")
	}
	if out, sent, err := DecideAutoResend(noon.Add(time.Minute), rec, rule, limits, h, rand.Reader); err != nil || out != AutoResendAlreadySent || len(sent) != 0 {
		t.Fatalf("a second call: %v %v %v; want ALREADY_SENT and nothing", out, sent, err)
	}

	counts := rule
	counts.Counts = true
	rec = newRec()
	if _, _, err := DecideAutoResend(noon, rec, counts, limits, h, rand.Reader); err != nil || rec.Challenges[0].ResendsUsed != 1 {
		t.Fatalf("counted: %v, resends used %d", err, rec.Challenges[0].ResendsUsed)
	}

	for name, change := range map[string]func(*SessionRecord) time.Time{
		"passed":       func(r *SessionRecord) time.Time { r.State = SessionPassed; return noon },
		"timed out":    func(r *SessionRecord) time.Time { r.State = SessionTimedOut; return noon },
		"cancelled":    func(r *SessionRecord) time.Time { r.State = SessionCancelled; return noon },
		"window ended": func(r *SessionRecord) time.Time { r.DeadlineAt = noon; return noon },
	} {
		rec := newRec()
		now := change(rec)
		if out, sent, err := DecideAutoResend(now, rec, rule, limits, h, rand.Reader); err != nil || out != AutoResendSessionClosed || len(sent) != 0 {
			t.Errorf("%s: %v %v %v; want SESSION_CLOSED and nothing", name, out, sent, err)
		}
	}
	rec = newRec()
	if out, sent, _ := DecideAutoResend(noon, rec, NoonRule{Hour: 12}, limits, h, rand.Reader); out != AutoResendDisabled || len(sent) != 0 || !rec.AutoResentAt.IsZero() {
		t.Errorf("disabled: %v %v", out, sent)
	}
}
