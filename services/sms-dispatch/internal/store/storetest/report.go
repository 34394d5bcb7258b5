package storetest

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/convert"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// reports are the ReportDelivery calls the engine's outbox holds, by message id.
func (e *env) reports(t *testing.T) map[string][]*verificationv1.ReportDeliveryRequest {
	t.Helper()
	rows, err := e.Outbox.Pending(ctx, 1_000_000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*verificationv1.ReportDeliveryRequest{}
	for _, r := range rows {
		if r.Target != convert.TargetReportDelivery {
			t.Fatalf("outbox row for %q: sms-dispatch owes nothing else", r.Target)
		}
		if strings.Contains(string(r.Payload), "13812345678") || strings.Contains(string(r.Payload), "123456") {
			t.Fatalf("a report carries the phone or the code: %q", r.Payload)
		}
		m := &verificationv1.ReportDeliveryRequest{}
		if err := proto.Unmarshal(r.Payload, m); err != nil {
			t.Fatal(err)
		}
		out[m.GetMessageId()] = append(out[m.GetMessageId()], m)
	}
	return out
}

// wantReport checks that the outbox holds exactly one FAILED report for each of ids (with the reason
// given), and none for any other message.
func (e *env) wantReports(t *testing.T, want map[string]string) {
	t.Helper()
	got := e.reports(t)
	for id, reason := range want {
		rs := got[id]
		if len(rs) != 1 {
			t.Errorf("message %s: %d reports, want 1", id, len(rs))
			continue
		}
		r := rs[0]
		if r.GetState() != verificationv1.DeliveryState_DELIVERY_STATE_FAILED || r.GetReason() != reason ||
			r.GetRequestId() != "delivery:"+id+":FAILED" || r.GetOrderId() != e.get(t, id).OrderID {
			t.Errorf("message %s: report %v, want FAILED %q", id, r, reason)
		}
	}
	for id := range got {
		if _, ok := want[id]; !ok {
			t.Errorf("message %s: reported, want no report", id)
		}
	}
}

// A message the per-phone caps fail (its expiry comes before the next allowed send) leaves exactly one
// report, written with the failure; the one sent leaves none.
func testCappedFailureReportsOnce(t *testing.T, e *env) {
	for id, expire := range map[string]time.Duration{"a": time.Hour, "c": 30 * time.Second} {
		m := e.message(t, id, "13812345678", expire)
		m.OrderID = "order-" + id
		e.createMsg(t, m)
	}
	a := e.claimOne(t, time.Minute)
	if d, _, err := e.Store.Reserve(ctx, a, domain.DefaultCaps, time.Second); err != nil || d.Action != domain.ActionSend {
		t.Fatalf("reserve a: %+v %v", d, err)
	}
	if ok, err := e.Store.MarkSent(ctx, a, "fake", T0, false); err != nil || !ok {
		t.Fatalf("MarkSent: %v %v", ok, err)
	}
	c := e.claimOne(t, time.Minute)
	if d, _, err := e.Store.Reserve(ctx, c, domain.DefaultCaps, time.Second); err != nil || d.Action != domain.ActionFail ||
		d.Error != domain.ErrorRateLimited {
		t.Fatalf("reserve c: %+v %v", d, err)
	}
	e.wantReports(t, map[string]string{"c": domain.ErrorRateLimited})
}

// An expired message leaves exactly one report, through the caps' reservation and without it (caps
// off: the dispatcher fails it itself); a message without an order (not verification's) leaves none.
func testExpiredFailureReportsOnce(t *testing.T, e *env) {
	for _, id := range []string{"capped", "uncapped", "orderless"} {
		m := e.message(t, id, "13812345678", time.Minute)
		m.OrderID = "order-" + id
		if id == "orderless" {
			m.OrderID = ""
		}
		e.createMsg(t, m)
	}
	e.clock.Advance(time.Minute)
	d := e.dispatcher(newFake(0), 1)
	d.Caps = domain.Caps{}
	if _, err := d.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Second)
	e.create(t, "capped-too", "13812345678", time.Millisecond)
	e.clock.Advance(time.Second)
	if _, err := e.dispatcher(newFake(0), 1).Drain(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"capped", "uncapped", "orderless", "capped-too"} {
		if m := e.get(t, id); m.State != domain.StateFailed || m.LastError != domain.ErrorExpired {
			t.Fatalf("%s = %+v, want FAILED expired", id, m)
		}
	}
	e.wantReports(t, map[string]string{"capped": domain.ErrorExpired, "uncapped": domain.ErrorExpired, "capped-too": domain.ErrorExpired})
}

// A provider's refusal reports only once it is final, with the fixed reason (never the provider's
// text); a stale claim's failure reports nothing; a superseded message reports nothing (its sender
// already replaced it).
func testProviderRefusalReportsWhenFinal(t *testing.T, e *env) {
	e.create(t, "m1", "13812345678", time.Hour)
	m := e.claimOne(t, time.Minute)
	if _, _, err := e.Store.Reserve(ctx, m, domain.DefaultCaps, time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.Store.SendFailed(ctx, m, T0, "fake", "gateway says: 13812345678 123456", false, T0.Add(time.Second)); err != nil || !ok {
		t.Fatalf("SendFailed: %v %v", ok, err)
	}
	e.wantReports(t, nil)
	e.clock.Advance(time.Second)
	m = e.claimOne(t, time.Minute)
	if _, _, err := e.Store.Reserve(ctx, m, domain.DefaultCaps, time.Second); err != nil {
		t.Fatal(err)
	}
	if ok, err := e.Store.SendFailed(ctx, m, e.clock.Now(), "fake", "gateway says: 13812345678 123456", true, time.Time{}); err != nil || !ok {
		t.Fatalf("final SendFailed: %v %v", ok, err)
	}
	// The stale claim's failure (its attempts were overtaken) changes nothing and reports nothing.
	if ok, err := e.Store.SendFailed(ctx, m, e.clock.Now(), "fake", "again", true, time.Time{}); err != nil || ok {
		t.Fatalf("stale SendFailed: %v %v", ok, err)
	}
	if err := e.Store.Fail(ctx, m, domain.ErrorNothingToSend); err != nil {
		t.Fatal(err)
	}

	// A superseded message fails without a report.
	e.create(t, "old", "13912345678", time.Hour)
	e.create(t, "new", "13912345678", time.Hour)
	if old := e.get(t, "old"); old.State != domain.StateFailed || old.LastError != domain.ErrorSuperseded {
		t.Fatalf("old = %+v", old)
	}
	e.wantReports(t, map[string]string{"m1": domain.ReasonProviderRefused})
}

// A queued message without a text fails as such and reports once.
func testNothingToSendReportsOnce(t *testing.T, e *env) {
	e.create(t, "m1", "13812345678", time.Hour)
	m := e.claimOne(t, time.Minute)
	if err := e.Store.Fail(ctx, m, domain.ErrorNothingToSend); err != nil {
		t.Fatal(err)
	}
	e.wantReports(t, map[string]string{"m1": domain.ErrorNothingToSend})
}
