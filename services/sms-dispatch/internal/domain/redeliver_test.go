package domain_test

import (
	"testing"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

func TestRedeliverable(t *testing.T) {
	had := map[string]bool{"a": true}
	hadFn := func(p string) bool { return had[p] }
	for _, tc := range []struct {
		name     string
		r        domain.Redelivery
		sender   string
		done     int
		want     bool
		wantNote string
	}{
		{"off", domain.Redelivery{Tries: 0, Providers: []string{"a", "b"}}, "a", 0, false, "tries 0"},
		{"one provider", domain.Redelivery{Tries: 2, Providers: []string{"a"}}, "a", 0, false, "no failover list"},
		{"b never had it", domain.Redelivery{Tries: 1, Providers: []string{"a", "b"}}, "a", 0, true, ""},
		{"tries used", domain.Redelivery{Tries: 1, Providers: []string{"a", "b", "c"}}, "b", 1, false, "no try left"},
		{"none left", domain.Redelivery{Tries: 3, Providers: []string{"a", "b"}}, "b", 1, false, "a had it, b sent it"},
	} {
		if got := tc.r.Redeliverable(tc.sender, tc.done, hadFn); got != tc.want {
			t.Errorf("%s: Redeliverable = %v, want %v (%s)", tc.name, got, tc.want, tc.wantNote)
		}
	}
}

func TestRedeliverNow(t *testing.T) {
	now := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	if !domain.RedeliverNow(true, false, now.Add(time.Second), now) {
		t.Error("an open window does not redeliver")
	}
	for name, ok := range map[string]bool{
		"not redeliverable": domain.RedeliverNow(false, false, now.Add(time.Hour), now),
		"superseded":        domain.RedeliverNow(true, true, now.Add(time.Hour), now),
		"window closed":     domain.RedeliverNow(true, false, now, now),
	} {
		if ok {
			t.Errorf("%s: redelivered", name)
		}
	}
}

// An earlier provider's DELIVERED counts until the message is final; its UNDELIVERED never does.
func TestApplyEarlierReceipt(t *testing.T) {
	at := time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		state     domain.State
		delivered bool
		want      domain.ReceiptOutcome
		wantState domain.State
	}{
		{domain.StateQueued, true, domain.ReceiptApplied, domain.StateDelivered},
		{domain.StateSent, true, domain.ReceiptApplied, domain.StateDelivered},
		{domain.StateAtRisk, true, domain.ReceiptApplied, domain.StateDelivered},
		{domain.StateSent, false, domain.ReceiptRepeat, domain.StateSent},
		{domain.StateQueued, false, domain.ReceiptRepeat, domain.StateQueued},
		{domain.StateUndelivered, true, domain.ReceiptRepeat, domain.StateUndelivered},
		{domain.StateDelivered, false, domain.ReceiptRepeat, domain.StateDelivered},
		{domain.StateFailed, true, domain.ReceiptIgnored, domain.StateFailed},
	} {
		m := domain.Message{State: tc.state}
		out := domain.ApplyEarlierReceipt(&m, domain.Receipt{Delivered: tc.delivered, Code: " DELIVRD ", At: at})
		if out != tc.want || m.State != tc.wantState {
			t.Errorf("%s, delivered %v: %q -> %s, want %q -> %s", tc.state, tc.delivered, out, m.State, tc.want, tc.wantState)
		}
		if out == domain.ReceiptApplied && (m.DeliveryCode != "DELIVRD" || !m.ReceiptAt.Equal(at)) {
			t.Errorf("%s: applied without its code and time: %+v", tc.state, m)
		}
	}
}
