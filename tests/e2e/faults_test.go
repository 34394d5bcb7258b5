package e2e

import (
	"fmt"
	"testing"
	"time"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// e. sms-dispatch is killed (SIGKILL) while the gateway holds its first request, then started again:
// every message arrives, a repeat carries the same message id (and Idempotency-Key) and the same
// code, and no verifier ever holds two valid codes.
func TestSMSDispatchKilledMidSend(t *testing.T) {
	s := startSuite(t, options{})
	s.gateway.mu.Lock()
	s.gateway.hold = make(chan struct{})
	s.gateway.mu.Unlock()

	principal := person("周九", "13812345678")
	web := person("吴十", "13987654321")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "crash.cn", Person: web}))
	select {
	case <-s.gateway.held:
	case <-time.After(20 * time.Second):
		t.Fatal("no message reached the gateway")
	}
	s.kill("sms-dispatch")
	s.gateway.mu.Lock()
	close(s.gateway.hold)
	s.gateway.hold = nil
	s.gateway.mu.Unlock()
	s.restart("sms-dispatch")

	// The held posts were recorded before the crash; wait for sms-dispatch to finish the job.
	eventually(t, 20*time.Second, "every message SENT after the restart", func() (bool, string) {
		resp, err := s.SMS.ListMessages(ctx(t), &smsv1.ListMessagesRequest{OrderId: order.OrderId})
		if err != nil {
			return false, err.Error()
		}
		sent := 0
		for _, m := range resp.Messages {
			if m.State == smsv1.MessageState_MESSAGE_STATE_SENT {
				sent++
			}
		}
		return sent == 2 && len(resp.Messages) == 2, fmt.Sprintf("%d of %d sent", sent, len(resp.Messages))
	})
	codes := s.waitCodes(1, phoneA, phoneB)
	posts := s.gateway.Posts()
	byID := map[string][]gatewayPost{}
	for _, p := range posts {
		if p.IdempotencyKey != p.MessageID {
			t.Errorf("post for %s carried Idempotency-Key %q", p.MessageID, p.IdempotencyKey)
		}
		byID[p.MessageID] = append(byID[p.MessageID], p)
	}
	repeated := 0
	for id, ps := range byID {
		for _, p := range ps[1:] {
			if p.Code() != ps[0].Code() {
				t.Errorf("message %s was repeated with a different code", id)
			}
		}
		if len(ps) > 1 {
			repeated++
		}
	}
	if repeated == 0 {
		t.Errorf("the message in flight at the crash was not sent again (posts: %d)", len(posts))
	}
	for _, phone := range []string{phoneA, phoneB} {
		if ids := distinctMessages(s.gateway.ForPhone(phone)); len(ids) != 1 {
			t.Errorf("%s received %d distinct messages, want 1: a verifier must never hold two codes", phone, len(ids))
		}
	}
	if _, err := s.verify(phoneA, codes[phoneA], tailOf(principal)); err != nil {
		t.Fatalf("principal check after the crash: %v", err)
	}
	resp, err := s.verify(phoneB, codes[phoneB], tailOf(web))
	if err != nil || resp.Result != verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("website check after the crash: %v %v", resp, err)
	}
	s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
}

// f. Two deadline processes on one database: each expired order is returned exactly once, never early.
func TestTwoDeadlineProcesses(t *testing.T) {
	s := startSuite(t, options{window: 2 * time.Second, extraDeadline: true})
	const n = 12
	var orders []*filingv1.Order
	for i := range n {
		p := person(fmt.Sprintf("测试%d", i), fmt.Sprintf("1370000%04d", i))
		orders = append(orders, s.submit(firstFiling(p, &filingv1.Website{Domain: fmt.Sprintf("d%d.cn", i), Person: p})))
	}
	for _, o := range orders {
		final := s.waitState(o.OrderId, filingv1.OrderState_ORDER_STATE_RETURNED, 30*time.Second)
		if final.ReturnReason != filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT {
			t.Errorf("%s returned for %v", o.OrderId, final.ReturnReason)
		}
		for _, h := range final.History {
			if h.To == filingv1.OrderState_ORDER_STATE_RETURNED && h.At.AsTime().Before(o.DeadlineAt.AsTime()) {
				t.Errorf("%s returned at %v, before its deadline %v", o.OrderId, h.At.AsTime(), o.DeadlineAt.AsTime())
			}
		}
	}
	time.Sleep(time.Second) // both sweepers keep running: give a duplicate the chance to show
	for _, o := range orders {
		final := s.waitState(o.OrderId, filingv1.OrderState_ORDER_STATE_RETURNED, time.Second)
		if c := countTransitions(final, filingv1.OrderState_ORDER_STATE_RETURNED); c != 1 {
			t.Errorf("%s: RETURNED recorded %d times, want exactly once", o.OrderId, c)
		}
		d, err := s.Deadline.GetDeadline(ctx(t), &deadlinev1.GetDeadlineRequest{OrderId: o.OrderId})
		if err != nil || d.Deadline.State != deadlinev1.DeadlineState_DEADLINE_STATE_FIRED || !d.Deadline.Closed {
			t.Errorf("%s deadline: %v %v; want FIRED and closed", o.OrderId, d, err)
		}
	}
}
