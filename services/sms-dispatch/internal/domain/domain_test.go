package domain

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

var t0 = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC) // 10:00 in UTC+8

func TestRender(t *testing.T) {
	deadline := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		name, locale, signature string
		params                  map[string]string
		expire                  time.Time
		want                    string
		wantField               string
	}{
		{name: "zh from expire_time", locale: LocaleZhCN, signature: "ICP备案", params: map[string]string{"code": "123456"}, expire: deadline,
			want: "【ICP备案】您的短信核验码为123456，请于2026-11-27 10:00前登录备案管理系统完成核验。"},
		{name: "zh deadline param wins", locale: LocaleZhCN, signature: "某云", params: map[string]string{"code": "654321", "deadline": "2026-11-27T18:30:00+08:00"}, expire: deadline,
			want: "【某云】您的短信核验码为654321，请于2026-11-27 18:30前登录备案管理系统完成核验。"},
		{name: "zh default signature", locale: LocaleZhCN, params: map[string]string{"code": "000001"}, expire: deadline,
			want: "【ICP备案】您的短信核验码为000001，请于2026-11-27 10:00前登录备案管理系统完成核验。"},
		{name: "en crosses midnight in UTC+8", locale: LocaleEn, params: map[string]string{"code": "123456"}, expire: time.Date(2026, 11, 27, 16, 5, 0, 0, time.UTC),
			want: "[ICP Filing] Your SMS verification code is 123456. Complete verification in the filing system before 2026-11-28 00:05 (UTC+8)."},
		{name: "missing code", locale: LocaleZhCN, params: map[string]string{}, expire: deadline, wantField: "params.code"},
		{name: "bad deadline", locale: LocaleZhCN, params: map[string]string{"code": "123456", "deadline": "tomorrow"}, expire: deadline, wantField: "params.deadline"},
		{name: "no deadline at all", locale: LocaleZhCN, params: map[string]string{"code": "123456"}, wantField: "params.deadline"},
		{name: "code too short", locale: LocaleZhCN, params: map[string]string{"code": "12345"}, expire: deadline, wantField: "params.code"},
		{name: "code not digits", locale: LocaleZhCN, params: map[string]string{"code": "１２３４５６"}, expire: deadline, wantField: "params.code"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Render(TemplateVerificationCode, tc.locale, tc.signature, tc.params, tc.expire)
			if tc.wantField != "" {
				var de *errs.Error
				if !asErr(err, &de) || de.Field != tc.wantField {
					t.Fatalf("err = %v, want field %s", err, tc.wantField)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Render = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func asErr(err error, de **errs.Error) bool {
	return errors.As(err, de)
}

func TestNewMessageValidation(t *testing.T) {
	valid := SendInput{MessageID: "vc-1", Phone: "+86 138 1234 5678", Template: TemplateVerificationCode,
		Params: map[string]string{"code": "123456"}, ExpireAt: t0.Add(24 * time.Hour), OrderID: "o-1"}
	long := make([]byte, MaxMessageIDLength+1)
	for i := range long {
		long[i] = 'a'
	}
	tests := []struct {
		name      string
		mod       func(*SendInput)
		wantField string
	}{
		{name: "valid", mod: func(*SendInput) {}},
		{name: "empty id", mod: func(in *SendInput) { in.MessageID = "" }, wantField: "message_id"},
		{name: "long id", mod: func(in *SendInput) { in.MessageID = string(long) }, wantField: "message_id"},
		{name: "bad phone", mod: func(in *SendInput) { in.Phone = "12345" }, wantField: "phone"},
		{name: "no template", mod: func(in *SendInput) { in.Template = TemplateUnspecified }, wantField: "template"},
		{name: "code not 6 digits", mod: func(in *SendInput) { in.Params = map[string]string{"code": "12345a"} }, wantField: "params.code"},
		{name: "no code", mod: func(in *SendInput) { in.Params = map[string]string{"deadline": "2026-11-27T10:00:00+08:00"} }, wantField: "params.code"},
		{name: "bad locale", mod: func(in *SendInput) { in.Locale = "fr" }, wantField: "locale"},
		{name: "no expiry", mod: func(in *SendInput) { in.ExpireAt = time.Time{} }, wantField: "expire_time"},
		{name: "long locale", mod: func(in *SendInput) { in.Locale = "en-" + strings.Repeat("x", MaxLocaleLength) }, wantField: "locale"},
		{name: "too many params", mod: func(in *SendInput) {
			in.Params = map[string]string{"code": "123456"}
			for i := range MaxParams {
				in.Params[fmt.Sprintf("p%d", i)] = "x"
			}
		}, wantField: "params"},
		{name: "long param name", mod: func(in *SendInput) {
			in.Params = map[string]string{"code": "123456", strings.Repeat("k", MaxParamKeyLength+1): "x"}
		}, wantField: "params"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := valid
			tc.mod(&in)
			m, err := NewMessage(in, "ICP备案", t0)
			if tc.wantField == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.Phone != "+8613812345678" || m.State != StateQueued || m.Locale != LocaleZhCN || m.Body == "" || !m.NextAttempt.Equal(t0) {
					t.Fatalf("message = %+v", m)
				}
				return
			}
			var de *errs.Error
			if !asErr(err, &de) || de.Field != tc.wantField || de.Kind != errs.KindInvalidArgument {
				t.Fatalf("err = %v, want InvalidArgument on %s", err, tc.wantField)
			}
		})
	}
}

func TestNormalizeLocale(t *testing.T) {
	for in, want := range map[string]string{"": LocaleZhCN, "zh-CN": LocaleZhCN, "zh": LocaleZhCN, "en": LocaleEn, "en-US": LocaleEn, "EN": LocaleEn} {
		if got, err := NormalizeLocale(in); err != nil || got != want {
			t.Errorf("NormalizeLocale(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestDecide walks one phone through a day with the default caps, as the dispatcher would: each
// allowed send is added to the log.
func TestDecide(t *testing.T) {
	caps := DefaultCaps
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	sends := func(ds ...time.Duration) []time.Time {
		var out []time.Time
		for _, d := range ds {
			out = append(out, at(d))
		}
		return out
	}
	hourly := []time.Duration{0, 2 * time.Minute, 4 * time.Minute, 6 * time.Minute, 8 * time.Minute}
	var daily []time.Duration
	for i := range 10 {
		daily = append(daily, time.Duration(i)*2*time.Hour)
	}
	tests := []struct {
		name   string
		now    time.Time
		expire time.Time
		sends  []time.Time
		want   Decision
	}{
		{name: "1st allowed", now: at(0), expire: at(24 * time.Hour), want: Decision{Action: ActionSend}},
		{name: "2nd within a minute delayed to +60s", now: at(10 * time.Second), expire: at(24 * time.Hour), sends: sends(0),
			want: Decision{Action: ActionReschedule, At: at(time.Minute)}},
		{name: "2nd exactly a minute later allowed", now: at(time.Minute), expire: at(24 * time.Hour), sends: sends(0), want: Decision{Action: ActionSend}},
		{name: "6th in an hour delayed until the 1st leaves the hour", now: at(10 * time.Minute), expire: at(24 * time.Hour), sends: sends(hourly...),
			want: Decision{Action: ActionReschedule, At: at(time.Hour)}},
		{name: "6th after the hour allowed", now: at(time.Hour), expire: at(24 * time.Hour), sends: sends(hourly...), want: Decision{Action: ActionSend}},
		{name: "11th in a day delayed when expiry is later", now: at(19 * time.Hour), expire: at(30 * time.Hour), sends: sends(daily...),
			want: Decision{Action: ActionReschedule, At: at(24 * time.Hour)}},
		{name: "11th in a day failed if past expiry", now: at(19 * time.Hour), expire: at(20 * time.Hour), sends: sends(daily...),
			want: Decision{Action: ActionFail, Error: ErrorRateLimited}},
		{name: "next allowed exactly at expiry fails", now: at(10 * time.Second), expire: at(time.Minute), sends: sends(0),
			want: Decision{Action: ActionFail, Error: ErrorRateLimited}},
		{name: "expired", now: at(time.Hour), expire: at(time.Hour), want: Decision{Action: ActionFail, Error: ErrorExpired}},
		{name: "old sends ignored", now: at(48 * time.Hour), expire: at(50 * time.Hour), sends: sends(daily...), want: Decision{Action: ActionSend}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Decide(tc.now, tc.expire, caps, tc.sends)
			if got.Action != tc.want.Action || !got.At.Equal(tc.want.At) || got.Error != tc.want.Error {
				t.Fatalf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCapsDisabledWindow(t *testing.T) {
	c := Caps{PerMinute: 0, PerHour: 0, PerDay: 2}
	if got := c.NextAllowed(t0, []time.Time{t0.Add(-time.Second)}); !got.Equal(t0) {
		t.Fatalf("NextAllowed = %v, want now", got)
	}
	if got := c.NextAllowed(t0, []time.Time{t0.Add(-2 * time.Hour), t0.Add(-time.Second)}); !got.Equal(t0.Add(22 * time.Hour)) {
		t.Fatalf("NextAllowed = %v, want +22h", got)
	}
}

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempts int
		jitter   float64
		want     time.Duration
	}{
		{1, 0, time.Second}, {2, 0, 2 * time.Second}, {3, 0, 4 * time.Second}, {7, 0, time.Minute}, {20, 0, time.Minute},
		{1, 0.5, 1100 * time.Millisecond}, {20, 0.99, time.Minute + time.Duration(0.99*0.2*float64(time.Minute))},
	}
	for _, tc := range tests {
		if got := Backoff(tc.attempts, tc.jitter); got != tc.want {
			t.Errorf("Backoff(%d, %v) = %v, want %v", tc.attempts, tc.jitter, got, tc.want)
		}
	}
}

func TestSameRequest(t *testing.T) {
	a := Message{Phone: "+8613812345678", Template: TemplateVerificationCode, Body: "x", Params: map[string]string{"code": "1"}}
	b := a
	b.Params = map[string]string{"code": "2"}
	if !SameRequest(a, b) {
		t.Fatal("same phone and template should match")
	}
	b.Phone = "+8613912345678"
	if SameRequest(a, b) {
		t.Fatal("different phone should not match")
	}
}

func TestMarkSentAndFailed(t *testing.T) {
	queued := func() Message {
		return Message{ID: "m", State: StateQueued, Body: "text 123456", Params: map[string]string{"code": "123456"}, LastError: "HTTP 500"}
	}
	tests := []struct {
		name     string
		apply    func(*Message)
		state    State
		redacted bool
	}{
		{"sent", func(m *Message) { m.MarkSent("webhook", t0, false) }, StateSent, true},
		{"sent, development keeps the text", func(m *Message) { m.MarkSent("console", t0, true) }, StateSent, false},
		{"failed", func(m *Message) { m.MarkFailed(ErrorExpired) }, StateFailed, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := queued()
			tc.apply(&m)
			if m.State != tc.state || m.Redacted != tc.redacted || (m.Body == "") != tc.redacted || (len(m.Params) == 0) != tc.redacted {
				t.Fatalf("got %+v", m)
			}
			if tc.state == StateSent && (!m.SentAt.Equal(t0) || m.LastError != "") {
				t.Fatalf("sent: %+v", m)
			}
		})
	}
}

func TestSupersedes(t *testing.T) {
	newer := Message{ID: "g2", OrderID: "o1", Phone: "+8613812345678", Template: TemplateVerificationCode, State: StateQueued, Sequence: 2}
	tests := []struct {
		name string
		mod  func(*Message)
		want bool
	}{
		{"older queued, same key", func(*Message) {}, true},
		{"itself", func(m *Message) { m.ID = "g2" }, false},
		{"already sent", func(m *Message) { m.State = StateSent }, false},
		{"other order", func(m *Message) { m.OrderID = "o2" }, false},
		{"other phone", func(m *Message) { m.Phone = "+8613912345678" }, false},
		{"other template", func(m *Message) { m.Template = TemplateUnspecified }, false},
		{"no order", func(m *Message) { m.OrderID = "" }, false},
		{"same sequence", func(m *Message) { m.Sequence = 2 }, false},
		{"higher sequence: delivered out of order", func(m *Message) { m.Sequence = 3 }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			older := newer
			older.ID, older.Sequence = "g1", 1
			tc.mod(&older)
			n := newer
			if older.OrderID == "" {
				n.OrderID = ""
			}
			if got := Supersedes(n, older); got != tc.want {
				t.Fatalf("Supersedes = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestArrivedLate(t *testing.T) {
	stored := Message{ID: "g2", OrderID: "o1", Phone: "+8613812345678", Template: TemplateVerificationCode, State: StateSent, Sequence: 2}
	late := stored
	late.ID, late.Sequence, late.State = "g1", 1, StateQueued
	if !ArrivedLate(late, stored) {
		t.Error("g1 arriving after g2 must be recognised as late")
	}
	if ArrivedLate(stored, late) {
		t.Error("g2 arriving after g1 is not late")
	}
	other := late
	other.OrderID = "o2"
	if ArrivedLate(other, stored) {
		t.Error("another order's message is never late against this one")
	}
}

func TestClaimCurrent(t *testing.T) {
	claimed := Message{State: StateQueued, Attempts: 2, NextAttempt: t0.Add(30 * time.Second)}
	tests := []struct {
		name     string
		mod      func(*Message)
		attempts int
		now      time.Time
		want     bool
	}{
		{"fresh claim", func(*Message) {}, 2, t0, true},
		{"lease exactly covers the send", func(*Message) {}, 2, t0.Add(20 * time.Second), true},
		{"lease too short for the send", func(*Message) {}, 2, t0.Add(20*time.Second + time.Microsecond), false},
		{"reclaimed by another worker", func(m *Message) { m.Attempts = 3 }, 2, t0, false},
		{"finished by another worker", func(m *Message) { m.State = StateSent }, 2, t0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := claimed
			tc.mod(&m)
			if got := ClaimCurrent(m, tc.attempts, tc.now, 10*time.Second); got != tc.want {
				t.Fatalf("ClaimCurrent = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestPositionAfter(t *testing.T) {
	last := Message{CreatedAt: t0.Add(123 * time.Microsecond), ID: "vc-1:2"}
	p := PositionOf(last)
	// Newest first, then message_id descending: older messages and same-instant lower ids come after.
	if p.After(last) || !p.After(Message{CreatedAt: last.CreatedAt, ID: "vc-1:1"}) || !p.After(Message{CreatedAt: t0, ID: "zz"}) ||
		p.After(Message{CreatedAt: last.CreatedAt, ID: "vc-1:3"}) || p.After(Message{CreatedAt: t0.Add(time.Second), ID: "a"}) {
		t.Fatalf("position %+v", p)
	}
}
