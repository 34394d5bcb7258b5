package domain

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

var b0 = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

// TestPhoneBudgetRollingWindow: failures older than the window do not count; the B-th in the
// window spends the budget and locks for one window from it; a locked phone refuses every check.
func TestPhoneBudgetRollingWindow(t *testing.T) {
	l := DefaultLimits
	mismatch := VerifyDecision{Pass: -1, Failures: []Failure{{Index: 0, FailedAttempts: 1}}}
	var fs []PhoneFailure
	now := b0
	for i := range l.PhoneFailureBudget - 1 {
		pc := DecidePhoneCheck(now, mismatch, fs, l)
		if pc.Err() != nil || pc.Failure == nil || pc.Spent {
			t.Fatalf("failure %d: %+v", i+1, pc)
		}
		fs = append(fs, *pc.Failure)
		now = now.Add(time.Hour)
	}
	// The first failure leaves the window: the next one is the 9th in it, not the 10th.
	now = b0.Add(l.PhoneFailureWindow)
	pc := DecidePhoneCheck(now, mismatch, fs, l)
	if pc.Spent {
		t.Fatal("a failure older than the window counted")
	}
	fs = append(fs, *pc.Failure)
	pc = DecidePhoneCheck(now, mismatch, fs, l)
	if !pc.Spent || !pc.Failure.LocksUntil.Equal(now.Add(l.PhoneFailureWindow)) {
		t.Fatalf("10th in the window: %+v", pc)
	}
	fs = append(fs, *pc.Failure)
	pass := VerifyDecision{Pass: 0}
	for _, at := range []time.Time{now, now.Add(l.PhoneFailureWindow - time.Second)} {
		pc := DecidePhoneCheck(at, pass, fs, l)
		var de *errs.Error
		if !errors.As(pc.Err(), &de) || de.Reason != ReasonPhoneLocked || pc.Verify.Pass >= 0 || pc.Failure != nil {
			t.Fatalf("check at %v of a locked phone: %+v", at, pc)
		}
	}
	if pc := DecidePhoneCheck(now.Add(l.PhoneFailureWindow), pass, fs, l); pc.Err() != nil || pc.Verify.Pass != 0 {
		t.Fatalf("after the lock: %+v", pc)
	}
	// A check that compared nothing (no pending challenge the caller sees) counts nothing.
	if pc := DecidePhoneCheck(b0, VerifyDecision{Pass: -1}, nil, l); pc.Failure != nil {
		t.Fatal("a check without candidates counted")
	}
}

// TestApplyPhoneCheckLocksEveryTenant: a spent budget locks every pending challenge of an open
// session, seen or not, and fails each session once.
func TestApplyPhoneCheckLocksEveryTenant(t *testing.T) {
	sessions := map[string]Session{"s1": {ID: "s1", State: SessionOpen, Tenant: "a"}, "s2": {ID: "s2", State: SessionOpen, Tenant: "b"},
		"s3": {ID: "s3", State: SessionFailed, Tenant: "b"}}
	chs := []Challenge{{ID: "c1", SessionID: "s1", State: ChallengePending, Failed: 4}, {ID: "c2", SessionID: "s2", State: ChallengePending},
		{ID: "c3", SessionID: "s3", State: ChallengePending}}
	visible := Visible(Scope{Tenant: "a"}, sessions, chs)
	if len(visible) != 1 || visible[0] != 0 {
		t.Fatalf("visible = %v", visible)
	}
	f := PhoneFailure{At: b0, LocksUntil: b0.Add(time.Hour)}
	e := ApplyPhoneCheck(PhoneCheck{Verify: VerifyDecision{Pass: -1, Failures: []Failure{{Index: 0, FailedAttempts: 5, Lock: true}}},
		Failure: &f, Spent: true}, sessions, chs, visible)
	if fmt.Sprint(e.Returned) != "[s1 s2]" || fmt.Sprint(e.Locked) != "[0 1]" || chs[2].State != ChallengePending ||
		sessions["s2"].State != SessionFailed || !e.LockedUntil.Equal(f.LocksUntil) {
		t.Fatalf("effects %+v, challenges %+v", e, chs)
	}
}

func TestCheckMismatchedPhones(t *testing.T) {
	seen := map[string]time.Time{"p1": b0, "p2": b0.Add(10 * time.Minute), "old": b0.Add(-2 * time.Hour)}
	if err := CheckMismatchedPhones(b0.Add(time.Minute), seen, "p3", 3); err != nil {
		t.Fatalf("2 of 3 in the window: %v", err)
	}
	seen["p3"] = b0.Add(20 * time.Minute)
	err := CheckMismatchedPhones(b0.Add(30*time.Minute), seen, "p4", 3)
	var de *errs.Error
	if !errors.As(err, &de) || de.Reason != ReasonTooManyMismatchedPhones || de.Kind != errs.KindResourceExhausted || de.RetryAfter != 30*time.Minute {
		t.Fatalf("a 4th phone = %v", err)
	}
	if err := CheckMismatchedPhones(b0.Add(30*time.Minute), seen, "p2", 3); err != nil {
		t.Fatalf("a phone already mismatched on: %v", err)
	}
	if err := CheckMismatchedPhones(b0.Add(time.Hour), seen, "p4", 3); err != nil {
		t.Fatalf("once p1 left the window: %v", err)
	}
	if err := CheckMismatchedPhones(b0, seen, "p9", 0); err != nil {
		t.Fatalf("no limit: %v", err)
	}
}
