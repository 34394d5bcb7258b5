package domain

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/phone"
)

func TestNewCodeShapeAndUniformity(t *testing.T) {
	const n = 100_000
	var digitCounts [CodeLength][10]int
	for range n {
		c, err := NewCode(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if !ValidCodeShape(c) {
			t.Fatalf("code %q has the wrong shape", c)
		}
		for i := 0; i < CodeLength; i++ {
			digitCounts[i][c[i]-'0']++
		}
	}
	// Each digit position should be uniform: expected n/10 per digit; allow 5% (≈ 7 sigma).
	for pos, counts := range digitCounts {
		for d, got := range counts {
			if want := n / 10; got < want*95/100 || got > want*105/100 {
				t.Errorf("position %d digit %d: %d draws, want about %d", pos, d, got, want)
			}
		}
	}
}

func TestNewCodeRejectionSampling(t *testing.T) {
	word := func(v uint32) []byte {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], v)
		return b[:]
	}
	tests := []struct {
		name  string
		input []byte
		want  string
		err   bool
	}{
		{"zero", word(0), "000000", false},
		{"plain", word(123456), "123456", false},
		{"largest accepted draw", word(rejectAbove - 1), "999999", false},
		{"rejects at the limit and draws again", append(word(rejectAbove), word(42)...), "000042", false},
		{"rejects the maximum and draws again", append(word(^uint32(0)), word(999999)...), "999999", false},
		{"short reader", []byte{1, 2}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NewCode(bytes.NewReader(tc.input))
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if got != tc.want {
				t.Fatalf("code = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestValidCodeShape(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"123456", true}, {"000000", true}, {"12345", false}, {"1234567", false},
		{"12345a", false}, {"", false}, {"１２３４５６", false}, {" 12345", false},
	}
	for _, tc := range tests {
		if got := ValidCodeShape(tc.in); got != tc.want {
			t.Errorf("ValidCodeShape(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func hexKey(b byte) string { return strings.Repeat(string("0123456789abcdef"[b%16])+"0", 32) }

func TestParseKeys(t *testing.T) {
	tests := []struct {
		name    string
		spec    string
		wantIDs []string
		err     bool
	}{
		{"one", "k1:" + hexKey(1), []string{"k1"}, false},
		{"rotation keeps order", "k2:" + hexKey(2) + ",k1:" + hexKey(1), []string{"k2", "k1"}, false},
		{"spaces tolerated", " k2:" + hexKey(2) + " , k1:" + hexKey(1), []string{"k2", "k1"}, false},
		{"empty", "", nil, true},
		{"no colon", hexKey(1), nil, true},
		{"not hex", "k1:zz" + hexKey(1), nil, true},
		{"too short", "k1:" + strings.Repeat("ab", 31), nil, true},
		{"duplicate id", "k1:" + hexKey(1) + ",k1:" + hexKey(2), nil, true},
		{"bad id", "k 1:" + hexKey(1), nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, err := ParseKeys(tc.spec)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if err != nil && strings.Contains(err.Error(), hexKey(1)) {
				t.Fatalf("error echoes key material: %v", err)
			}
			var ids []string
			for _, k := range keys {
				ids = append(ids, k.ID)
			}
			if strings.Join(ids, ",") != strings.Join(tc.wantIDs, ",") {
				t.Fatalf("ids = %v, want %v", ids, tc.wantIDs)
			}
		})
	}
}

func TestHasherRotation(t *testing.T) {
	oldKeys, _ := ParseKeys("old:" + hexKey(1))
	newKeys, _ := ParseKeys("new:" + hexKey(2) + ",old:" + hexKey(1))
	onlyNew, _ := ParseKeys("new:" + hexKey(2))
	oldH, _ := NewHasher(oldKeys)
	rotH, _ := NewHasher(newKeys)
	newOnlyH, _ := NewHasher(onlyNew)

	oldKID, oldCode := oldH.HashCode("c1", "123456")
	_, oldTail := oldH.HashTail("c1", "12345X")
	newKID, newCode := rotH.HashCode("c1", "123456")

	tests := []struct {
		name string
		got  bool
		want bool
	}{
		{"old hash verifies after rotation", rotH.VerifyCode(oldKID, oldCode, "c1", "123456"), true},
		{"old tail verifies after rotation", rotH.VerifyTail(oldKID, oldTail, "c1", "12345X"), true},
		{"new key signs", newKID == "new", true},
		{"new hash verifies", rotH.VerifyCode(newKID, newCode, "c1", "123456"), true},
		{"wrong code fails", rotH.VerifyCode(newKID, newCode, "c1", "123457"), false},
		{"other challenge fails", rotH.VerifyCode(newKID, newCode, "c2", "123456"), false},
		{"code hash is not a tail hash", rotH.VerifyTail(newKID, newCode, "c1", "123456"), false},
		{"retired key no longer verifies", newOnlyH.VerifyCode(oldKID, oldCode, "c1", "123456"), false},
		{"key id mismatch fails", rotH.VerifyCode("new", oldCode, "c1", "123456"), false},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if _, err := NewHasher([]Key{{ID: "x", Secret: []byte("short")}}); err == nil {
		t.Error("short key accepted")
	}
	k, err := EphemeralKey()
	if err != nil || k.ID != EphemeralKeyID || len(k.Secret) != MinKeyBytes {
		t.Errorf("ephemeral key = %v, %v", k.ID, err)
	}
}

func reasonOf(err error) string { return errs.Reason(err) }

func TestNormalizeVerify(t *testing.T) {
	tests := []struct {
		name, phone, code, tail string
		field                   string
		wantPhone, wantTail     string
	}{
		{"ok", "+86 138 1234 5678", "123456", " 12345x ", "", "+8613812345678", "12345X"},
		{"bad phone", "12", "123456", "12345X", "phone", "", ""},
		{"five digits", "13812345678", "12345", "12345X", "code", "", ""},
		{"letters in code", "13812345678", "12345a", "12345X", "code", "", ""},
		{"short tail", "13812345678", "123456", "1234", "id_tail", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeVerify(phone.Countries{}, tc.phone, tc.code, tc.tail, "")
			var de *errs.Error
			if tc.field != "" {
				if !errors.As(err, &de) || de.Kind != errs.KindInvalidArgument || de.Field != tc.field {
					t.Fatalf("err = %v, want InvalidArgument on %s", err, tc.field)
				}
				return
			}
			if err != nil || got.Phone != tc.wantPhone || got.Tail != tc.wantTail {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
}

var t0 = time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)

func TestCheckableDeadlineBoundary(t *testing.T) {
	deadline := t0.Add(24 * time.Hour)
	tests := []struct {
		name string
		now  time.Time
		s    SessionState
		c    ChallengeState
		want bool
	}{
		{"1ns before the deadline passes", deadline.Add(-time.Nanosecond), SessionOpen, ChallengePending, true},
		{"exactly at the deadline fails", deadline, SessionOpen, ChallengePending, false},
		{"after the deadline fails", deadline.Add(time.Second), SessionOpen, ChallengePending, false},
		{"passed challenge", t0, SessionOpen, ChallengePassed, false},
		{"locked challenge", t0, SessionOpen, ChallengeLocked, false},
		{"timed out session", t0, SessionTimedOut, ChallengePending, false},
		{"cancelled session", t0, SessionCancelled, ChallengePending, false},
		{"failed session", t0, SessionFailed, ChallengePending, false},
	}
	for _, tc := range tests {
		if got := Checkable(tc.now, tc.s, tc.c, deadline); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDecideVerify(t *testing.T) {
	deadline := t0.Add(time.Hour)
	open := func(failed int, code, tail bool) Candidate {
		return Candidate{SessionState: SessionOpen, ChallengeState: ChallengePending, DeadlineAt: deadline,
			FailedAttempts: failed, CodeMatches: code, TailMatches: tail}
	}
	closed := open(0, true, true)
	closed.SessionState = SessionTimedOut
	tests := []struct {
		name      string
		now       time.Time
		cands     []Candidate
		wantPass  int
		wantFails []Failure
	}{
		{"no candidates", t0, nil, -1, nil},
		{"match", t0, []Candidate{open(0, true, true)}, 0, nil},
		{"match after failures", t0, []Candidate{open(4, true, true)}, 0, nil},
		{"wrong code counts", t0, []Candidate{open(0, false, true)}, -1, []Failure{{0, 1, false}}},
		{"wrong tail counts", t0, []Candidate{open(2, true, false)}, -1, []Failure{{0, 3, false}}},
		{"fifth failure locks", t0, []Candidate{open(4, false, false)}, -1, []Failure{{0, 5, true}}},
		{"second order matches, first untouched", t0, []Candidate{open(1, false, true), open(0, true, true)}, 1, nil},
		{"no match counts on each checkable", t0, []Candidate{open(1, false, true), closed, open(0, true, false)}, -1,
			[]Failure{{0, 2, false}, {2, 1, false}}},
		{"closed session never passes", t0, []Candidate{closed}, -1, nil},
		{"right entry at the deadline fails without counting", deadline, []Candidate{open(0, true, true)}, -1, nil},
		{"right entry 1ns before the deadline passes", deadline.Add(-time.Nanosecond), []Candidate{open(0, true, true)}, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := DecideVerify(tc.now, tc.cands, 5)
			if d.Pass != tc.wantPass {
				t.Fatalf("pass = %d, want %d", d.Pass, tc.wantPass)
			}
			if len(d.Failures) != len(tc.wantFails) {
				t.Fatalf("failures = %+v, want %+v", d.Failures, tc.wantFails)
			}
			for i := range d.Failures {
				if d.Failures[i] != tc.wantFails[i] {
					t.Fatalf("failures = %+v, want %+v", d.Failures, tc.wantFails)
				}
			}
		})
	}
}

func TestAllPassed(t *testing.T) {
	tests := []struct {
		in   []ChallengeState
		want bool
	}{
		{nil, false},
		{[]ChallengeState{ChallengePassed}, true},
		{[]ChallengeState{ChallengePassed, ChallengePending}, false},
		{[]ChallengeState{ChallengePassed, ChallengeLocked}, false},
	}
	for _, tc := range tests {
		if got := AllPassed(tc.in); got != tc.want {
			t.Errorf("AllPassed(%v) = %v", tc.in, got)
		}
	}
}

func TestCheckResend(t *testing.T) {
	l := DefaultLimits
	deadline := t0.Add(24 * time.Hour)
	base := ResendState{SessionState: SessionOpen, ChallengeState: ChallengePending, DeadlineAt: deadline, LastSentAt: t0}
	with := func(f func(*ResendState)) ResendState { s := base; f(&s); return s }
	tests := []struct {
		name      string
		now       time.Time
		s         ResendState
		reason    string
		retryWant time.Duration
	}{
		{"too soon right after the first send", t0.Add(10 * time.Second), base, ReasonResendTooSoon, 50 * time.Second},
		{"1ns before the interval", t0.Add(time.Minute - time.Nanosecond), base, ReasonResendTooSoon, time.Nanosecond},
		{"exactly at the interval", t0.Add(time.Minute), base, "", 0},
		{"second resend allowed", t0.Add(5 * time.Minute), with(func(s *ResendState) { s.ResendsUsed = 1 }), "", 0},
		{"third resend refused", t0.Add(5 * time.Minute), with(func(s *ResendState) { s.ResendsUsed = 2 }), ReasonResendLimit, 0},
		{"passed verifier", t0.Add(5 * time.Minute), with(func(s *ResendState) { s.ChallengeState = ChallengePassed }), ReasonVerifierNotPending, 0},
		{"locked verifier", t0.Add(5 * time.Minute), with(func(s *ResendState) { s.ChallengeState = ChallengeLocked }), ReasonVerifierNotPending, 0},
		{"closed session", t0.Add(5 * time.Minute), with(func(s *ResendState) { s.SessionState = SessionTimedOut }), ReasonVerifierNotPending, 0},
		{"at the deadline", deadline, base, ReasonVerifierNotPending, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckResend(tc.now, tc.s, l)
			if reasonOf(err) != tc.reason {
				t.Fatalf("err = %v, want reason %q", err, tc.reason)
			}
			var de *errs.Error
			if errors.As(err, &de) && de.RetryAfter != tc.retryWant {
				t.Fatalf("retry after = %s, want %s", de.RetryAfter, tc.retryWant)
			}
		})
	}
	if got := ResendsLeft(3, l); got != 0 {
		t.Errorf("ResendsLeft(3) = %d", got)
	}
}

func TestDecideClose(t *testing.T) {
	deadline := t0.Add(time.Hour)
	tests := []struct {
		name   string
		now    time.Time
		state  SessionState
		want   CloseDecision
		reason string
	}{
		{"never early", deadline.Add(-time.Nanosecond), SessionOpen, CloseDecision{}, ReasonDeadlineNotReached},
		{"open at the deadline times out", deadline, SessionOpen, CloseDecision{Closed: true, Return: true}, ""},
		{"timed out is idempotent", deadline.Add(time.Hour), SessionTimedOut, CloseDecision{Closed: true, Return: false}, ""},
		{"passed stays", deadline, SessionPassed, CloseDecision{Closed: false, Return: false}, ""},
		{"failed stays", deadline, SessionFailed, CloseDecision{Closed: false, Return: false}, ""},
		{"cancelled stays", deadline, SessionCancelled, CloseDecision{Closed: false, Return: false}, ""},
	}
	for _, tc := range tests {
		got, err := DecideClose(tc.now, tc.state, deadline)
		if reasonOf(err) != tc.reason || got != tc.want {
			t.Errorf("%s: got %+v, %v; want %+v, %q", tc.name, got, err, tc.want, tc.reason)
		}
	}
}

func TestNormalizeOpen(t *testing.T) {
	good := OpenSpec{OrderID: "o1", Submission: 1, DeadlineAt: t0.Add(time.Hour),
		Verifiers: []VerifierSpec{{Phone: "13812345678", Roles: []string{"PRINCIPAL"}, Tails: []string{"12345x"}}}}
	with := func(f func(*OpenSpec)) OpenSpec {
		s := good
		s.Verifiers = append([]VerifierSpec(nil), good.Verifiers...)
		f(&s)
		return s
	}
	tests := []struct {
		name  string
		in    OpenSpec
		field string
	}{
		{"ok", good, ""},
		{"no order", with(func(s *OpenSpec) { s.OrderID = "" }), "order_id"},
		{"zero submission", with(func(s *OpenSpec) { s.Submission = 0 }), "submission"},
		{"no deadline", with(func(s *OpenSpec) { s.DeadlineAt = time.Time{} }), "deadline_at"},
		{"no verifiers", with(func(s *OpenSpec) { s.Verifiers = nil }), "verifiers"},
		{"bad phone", with(func(s *OpenSpec) { s.Verifiers[0].Phone = "123" }), "verifiers[0].phone"},
		{"bad tail", with(func(s *OpenSpec) { s.Verifiers[0].Tails = []string{"123"} }), "verifiers[0].id_tails[0]"},
		{"no tails", with(func(s *OpenSpec) { s.Verifiers[0].Tails = nil }), "verifiers[0].id_tails"},
		{"duplicate phone", with(func(s *OpenSpec) { s.Verifiers = append(s.Verifiers, s.Verifiers[0]) }), "verifiers[1].phone"},
		{"bad locale", with(func(s *OpenSpec) { s.Locale = "fr" }), "locale"},
		{"too many verifiers", with(func(s *OpenSpec) {
			for i := range MaxSessionVerifiers {
				s.Verifiers = append(s.Verifiers, VerifierSpec{Phone: fmt.Sprintf("+86139%08d", i), Tails: []string{"12345X"}})
			}
		}), "verifiers"},
		{"too many roles", with(func(s *OpenSpec) { s.Verifiers[0].Roles = make([]string, MaxVerifierRoles+1) }), "verifiers[0].roles"},
		{"empty role", with(func(s *OpenSpec) { s.Verifiers[0].Roles = []string{"principal", ""} }), "verifiers[0].roles[1]"},
		{"long role", with(func(s *OpenSpec) { s.Verifiers[0].Roles = []string{strings.Repeat("r", MaxRoleLength+1)} }), "verifiers[0].roles[0]"},
		{"too many tails", with(func(s *OpenSpec) {
			s.Verifiers[0].Tails = slices.Repeat([]string{"12345X"}, MaxVerifierTails+1)
		}), "verifiers[0].id_tails"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := NormalizeOpen(tc.in)
			if tc.field == "" {
				if err != nil || out.Locale != DefaultLocale || out.Verifiers[0].Phone != "+8613812345678" || out.Verifiers[0].Tails[0] != "12345X" {
					t.Fatalf("got %+v, %v", out, err)
				}
				return
			}
			var de *errs.Error
			if !errors.As(err, &de) || de.Field != tc.field {
				t.Fatalf("err = %v, want field %s", err, tc.field)
			}
		})
	}
}

// TestForeignPhoneIsMalformed: a valid mobile number of a country filing does not accept gets the
// answer of a malformed number (field, reason and message), in Verify and in ResendCode's
// NormalizePhone; with its country allowed it is normalized.
func TestForeignPhoneIsMalformed(t *testing.T) {
	_, malformed := NormalizeVerify(phone.Countries{}, "12", "123456", "12345X", "")
	_, foreign := NormalizeVerify(phone.Countries{}, "+852 5123 4567", "123456", "12345X", "")
	var m, f *errs.Error
	if !errors.As(malformed, &m) || !errors.As(foreign, &f) || m.Error() != f.Error() || m.Kind != f.Kind || f.Reason != phone.ReasonInvalidPhone {
		t.Fatalf("foreign %#v, malformed %#v: want the same answer", foreign, malformed)
	}
	if _, err := NormalizePhone(phone.Countries{}, "phone", "+1 202 555 0143"); errs.Reason(err) != phone.ReasonInvalidPhone {
		t.Fatalf("NormalizePhone of a US number: %v", err)
	}
	hk, err := phone.ParseCountries("86,852")
	if err != nil {
		t.Fatal(err)
	}
	if in, err := NormalizeVerify(hk, "+852 5123 4567", "123456", "12345X", ""); err != nil || in.Phone != "+85251234567" {
		t.Fatalf("allowed +852: %+v, %v", in, err)
	}
}

func TestDecideOpen(t *testing.T) {
	spec := OpenSpec{OrderID: "o", Submission: 2, DeadlineAt: t0.Add(time.Hour)}
	tests := []struct {
		name   string
		now    time.Time
		exists bool
		latest int32
		want   OpenAction
		reason string
	}{
		{"new", t0, false, 0, OpenNew, ""},
		{"newer than the latest", t0, false, 1, OpenNew, ""},
		{"replay wins over everything", t0.Add(2 * time.Hour), true, 5, OpenReplay, ""},
		{"stale", t0, false, 3, 0, ReasonStaleSubmission},
		{"stale even when late", t0.Add(2 * time.Hour), false, 3, 0, ReasonStaleSubmission},
		{"1ns before the deadline opens", spec.DeadlineAt.Add(-time.Nanosecond), false, 0, OpenNew, ""},
		{"at the deadline it is born timed out", spec.DeadlineAt, false, 0, OpenExpired, ""},
		{"after the deadline it is born timed out", spec.DeadlineAt.Add(time.Hour), false, 1, OpenExpired, ""},
	}
	for _, tc := range tests {
		got, err := DecideOpen(tc.now, tc.exists, tc.latest, spec, nil)
		if reasonOf(err) != tc.reason || (err == nil && got != tc.want) {
			t.Errorf("%s: got %v, %v; want %v, %q", tc.name, got, err, tc.want, tc.reason)
		}
	}
}

func TestDecideResendByPhone(t *testing.T) {
	deadline := t0.Add(time.Hour)
	cand := func(failed int, tail bool, created time.Time) ResendCandidate {
		return ResendCandidate{Check: Candidate{SessionState: SessionOpen, ChallengeState: ChallengePending, DeadlineAt: deadline,
			FailedAttempts: failed, CodeMatches: true}, TailMatches: tail, CreatedAt: created}
	}
	tests := []struct {
		name      string
		now       time.Time
		cands     []ResendCandidate
		wantFound int
		wantFails []Failure
	}{
		{"nothing pending", t0, nil, -1, nil},
		{"match", t0, []ResendCandidate{cand(0, true, t0)}, 0, nil},
		{"newest matching session wins", t0, []ResendCandidate{cand(0, true, t0.Add(time.Minute)), cand(0, false, t0.Add(time.Hour)),
			cand(0, true, t0)}, 0, nil},
		{"a match past the deadline is still found (the limits answer)", deadline, []ResendCandidate{cand(0, true, t0)}, 0, nil},
		{"mismatch counts on every pending challenge", t0, []ResendCandidate{cand(0, false, t0), cand(3, false, t0)}, -1,
			[]Failure{{0, 1, false}, {1, 4, false}}},
		{"fifth failure locks", t0, []ResendCandidate{cand(4, false, t0)}, -1, []Failure{{0, 5, true}}},
		{"mismatch past the deadline counts nothing", deadline, []ResendCandidate{cand(0, false, t0)}, -1, nil},
	}
	for _, tc := range tests {
		found, fails := DecideResendByPhone(tc.now, tc.cands, 5)
		if found != tc.wantFound || fmt.Sprint(fails) != fmt.Sprint(tc.wantFails) {
			t.Errorf("%s: got %d %v; want %d %v", tc.name, found, fails, tc.wantFound, tc.wantFails)
		}
	}
}

func TestIDs(t *testing.T) {
	tests := []struct{ got, want string }{
		{VerifierID(0), "v1"},
		{VerifierID(1), "v2"},
		{MessageID("s", "v1", 2), "vc-s-v1-2"},
		{MarkVerifiedRequestID("o", 3), "verification:mark-verified:o:3"},
		{CancelDeadlineRequestID("o", 3), "verification:cancel-deadline:o:3"},
		{ReturnRequestID("o", 3), "verification:return:o:3"},
	}
	for _, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if e := ErrNotMatched(); reasonOf(e) != ReasonNotMatched || !strings.Contains(e.Error(), "找不到记录") {
		t.Errorf("not matched error = %v", e)
	}
}
