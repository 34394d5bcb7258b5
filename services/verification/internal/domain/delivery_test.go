package domain

import (
	"strings"
	"testing"

	"github.com/icpverify/icpverify/pkg/errs"
)

func TestParseMessageIDReadsMessageIDBack(t *testing.T) {
	sess := "0b4c2a4e-8f1d-4a53-9c1e-2f6f7b1d3a90"
	for _, gen := range []int{1, 2, 17} {
		id := MessageID(sess, "v12", gen)
		s, v, g, ok := ParseMessageID(id)
		if !ok || s != sess || v != "v12" || g != gen {
			t.Errorf("ParseMessageID(%q) = %q %q %d %v", id, s, v, g, ok)
		}
	}
	for _, id := range []string{"", "hello", "vc-", "vc-s-v1", "vc-s-v1-0", "vc-s-v1-01", "vc-s-v1--1", "vc--v1-1", "vc-s--1",
		"xc-s-v1-1", "vc-s-v1-1x"} {
		if s, v, g, ok := ParseMessageID(id); ok {
			t.Errorf("ParseMessageID(%q) = %q %q %d, want not a code message", id, s, v, g)
		}
	}
}

func TestCheckDeliveryReport(t *testing.T) {
	ok := DeliveryReport{MessageID: "vc-s-v1-1", OrderID: "o1", State: DeliveryFailed, Reason: "expired"}
	if err := CheckDeliveryReport(ok); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		change func(*DeliveryReport)
		reason string
	}{
		{"no message id", func(r *DeliveryReport) { r.MessageID = "" }, ReasonInvalidMessageID},
		{"long message id", func(r *DeliveryReport) { r.MessageID = strings.Repeat("m", MaxMessageIDLength+1) }, ReasonInvalidMessageID},
		{"no order", func(r *DeliveryReport) { r.OrderID = "" }, "MISSING_ORDER_ID"},
		{"no state", func(r *DeliveryReport) { r.State = "" }, ReasonInvalidDeliveryState},
		{"long reason", func(r *DeliveryReport) { r.Reason = strings.Repeat("r", MaxDeliveryReasonLength+1) }, ReasonInvalidDeliveryReason},
	} {
		r := ok
		c.change(&r)
		if err := CheckDeliveryReport(r); errs.Reason(err) != c.reason {
			t.Errorf("%s: %v, want %s", c.name, err, c.reason)
		}
	}
}

func TestApplyDeliveryVoidsOnlyTheCurrentPendingCode(t *testing.T) {
	newOrder := func() *OrderSessions {
		return &OrderSessions{OrderID: "o1", Sessions: []SessionRecord{{Session: Session{ID: "s1", OrderID: "o1", State: SessionOpen},
			Challenges: []Challenge{{ID: "c1", SessionID: "s1", VerifierID: "v1", Generation: 2, State: ChallengePending, CodeHash: []byte{1}}}}}}
	}
	report := func(gen int) DeliveryReport {
		return DeliveryReport{MessageID: MessageID("s1", "v1", gen), OrderID: "o1", State: DeliveryFailed}
	}
	o := newOrder()
	if _, c, _ := ApplyDelivery(o, report(1)); c != nil || o.Sessions[0].Challenges[0].CodeVoid() {
		t.Fatal("an older generation's report voided the current code")
	}
	if _, c, _ := ApplyDelivery(o, report(2)); c == nil || !o.Sessions[0].Challenges[0].CodeVoid() {
		t.Fatal("the current generation's report did not void the code")
	}
	if _, c, _ := ApplyDelivery(o, report(2)); c != nil {
		t.Fatal("a void code was voided again")
	}
	for name, change := range map[string]func(*SessionRecord){
		"passed": func(r *SessionRecord) { r.Challenges[0].State = ChallengePassed },
		"locked": func(r *SessionRecord) { r.Challenges[0].State = ChallengeLocked },
		"closed": func(r *SessionRecord) { r.State = SessionTimedOut },
	} {
		o := newOrder()
		change(&o.Sessions[0])
		if _, c, _ := ApplyDelivery(o, report(2)); c != nil {
			t.Errorf("%s: voided", name)
		}
	}
}

func TestVoidCodeMatchesNoEntry(t *testing.T) {
	keys, _ := ParseKeys("k1:" + strings.Repeat("ab", 32))
	h, _ := NewHasher(keys)
	c := Challenge{ID: "c1", State: ChallengePending}
	c.CodeKeyID, c.CodeHash = h.HashCode(c.ID, "123456")
	sess := Session{State: SessionOpen}
	if !h.Candidate(sess, c, nil, "123456", "", nil).CodeMatches {
		t.Fatal("the code does not match before the void")
	}
	c.VoidCode()
	if h.Candidate(sess, c, nil, "123456", "", nil).CodeMatches {
		t.Fatal("a voided code matched")
	}
}
