package e2e

import (
	"fmt"
	"testing"
	"time"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
)

// The suite with --sms-provider=aliyun against a fake dysmsapi that checks every request's
// ACS3 signature: the code arrives as the template's variables (OutId = the message id, the
// deadline as the text shows it) and passes.
func TestAliyunCodeArrivesAndPasses(t *testing.T) {
	s := startSuite(t, options{smsProvider: "aliyun"})
	principal := person("吴十", "13812345678")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "aliyun.cn", Person: principal}))
	codes := s.waitCodes(1, phoneA)
	got := s.gateway.aliyun.Accepted()
	if len(got) != 1 || got[0].SignName != "ICP备案" || got[0].Template != "SMS_480012345" || got[0].Params["time"] == "" {
		t.Fatalf("the fake accepted %+v", got)
	}
	// The fake records the acceptance before it answers; the SENT mark follows the answer.
	eventually(t, 10*time.Second, "the message the fake accepted (OutId = message id) to be SENT by aliyun", func() (bool, string) {
		msgs, err := s.SMS.ListMessages(ctx(t), &smsv1.ListMessagesRequest{OrderId: order.OrderId})
		return err == nil && len(msgs.GetMessages()) == 1 && msgs.GetMessages()[0].GetMessageId() == got[0].MessageID &&
			msgs.GetMessages()[0].GetProvider() == "aliyun", fmt.Sprint(msgs, err)
	})
	resp, err := s.verify(phoneA, codes[phoneA], tailOf(principal))
	if err != nil || resp.GetResult() != verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("verify: %v, %v", resp, err)
	}
	s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
}

// A number the provider calls invalid (isv.MOBILE_NUMBER_ILLEGAL, permanent) fails its message at
// the first attempt, with the default --max-attempts, and verification voids the code.
func TestAliyunInvalidNumberFailsAtOnce(t *testing.T) {
	s := startSuite(t, options{smsProvider: "aliyun"})
	s.gateway.aliyun.FailPhone(phoneA, "isv.MOBILE_NUMBER_ILLEGAL")
	principal := person("郑一", "13812345678")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "invalid.cn", Person: principal}))
	eventually(t, 20*time.Second, "the refused code to be voided", func() (bool, string) {
		st, err := s.Verification.GetVerificationStatus(ctx(t), &verificationv1.GetVerificationStatusRequest{OrderId: order.OrderId})
		if err != nil {
			return false, err.Error()
		}
		v := st.GetStatus().GetVerifiers()[0]
		return v.GetCodeUndelivered(), fmt.Sprint(v)
	})
	msgs, err := s.SMS.ListMessages(ctx(t), &smsv1.ListMessagesRequest{OrderId: order.OrderId})
	if err != nil || len(msgs.GetMessages()) != 1 || msgs.GetMessages()[0].GetState() != smsv1.MessageState_MESSAGE_STATE_FAILED {
		t.Fatalf("sms-dispatch's messages = %v, %v, want the one FAILED", msgs, err)
	}
	if n := s.gateway.aliyun.Requests(); n != 1 {
		t.Fatalf("the gateway was called %d times, want once (a permanent refusal is not retried)", n)
	}
}

// The carrier's receipts reach the verifier's status: the fake pushes SmsReport to sms-dispatch's
// receipt endpoint as Alibaba Cloud would; a delivered code shows delivered, an undelivered one
// undelivered (and voided: a resend is offered, another number advised).
func TestAliyunReceiptsReachVerificationStatus(t *testing.T) {
	s := startSuite(t, options{smsProvider: "aliyun"})
	pushURL := s.receiptURL + "/receipts/aliyun/" + e2eReceiptToken
	cases := []struct {
		phone, name, domain string
		delivered           bool
		want                verificationv1.CodeDelivery
		state               smsv1.MessageState
	}{
		{phoneA, "王五", "delivered.cn", true, verificationv1.CodeDelivery_CODE_DELIVERY_DELIVERED, smsv1.MessageState_MESSAGE_STATE_DELIVERED},
		{phoneB, "赵六", "undelivered.cn", false, verificationv1.CodeDelivery_CODE_DELIVERY_UNDELIVERED, smsv1.MessageState_MESSAGE_STATE_UNDELIVERED},
	}
	for _, tc := range cases {
		p := person(tc.name, tc.phone[3:])
		order := s.submit(firstFiling(p, &filingv1.Website{Domain: tc.domain, Person: p}))
		s.waitCodes(1, tc.phone)
		var msg providertest.Accepted
		eventually(t, 10*time.Second, "the message to be SENT", func() (bool, string) {
			for _, a := range s.gateway.aliyun.Accepted() {
				if a.Phone == tc.phone {
					msg = a
				}
			}
			m, err := s.SMS.ListMessages(ctx(t), &smsv1.ListMessagesRequest{OrderId: order.OrderId})
			if err != nil || len(m.GetMessages()) != 1 {
				return false, fmt.Sprint(m, err)
			}
			return msg.ProviderID != "" && m.GetMessages()[0].GetState() == smsv1.MessageState_MESSAGE_STATE_SENT, fmt.Sprint(m)
		})
		st, err := s.Verification.GetVerificationStatus(ctx(t), &verificationv1.GetVerificationStatusRequest{OrderId: order.OrderId})
		if err != nil || st.GetStatus().GetVerifiers()[0].GetDelivery() != verificationv1.CodeDelivery_CODE_DELIVERY_PENDING {
			t.Fatalf("before the receipt: %v, %v", st, err)
		}
		report := msg.AliyunReport(tc.delivered, "MK:0001")
		for range 2 { // Alibaba Cloud may push a report twice
			if err := providertest.PushAliyun(pushURL, report); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 15*time.Second, "the receipt to reach the status", func() (bool, string) {
			st, err := s.Verification.GetVerificationStatus(ctx(t), &verificationv1.GetVerificationStatusRequest{OrderId: order.OrderId})
			if err != nil {
				return false, err.Error()
			}
			v := st.GetStatus().GetVerifiers()[0]
			return v.GetDelivery() == tc.want && v.GetCodeUndelivered() == !tc.delivered, fmt.Sprint(v)
		})
		m, err := s.SMS.ListMessages(ctx(t), &smsv1.ListMessagesRequest{OrderId: order.OrderId})
		if err != nil || m.GetMessages()[0].GetState() != tc.state || m.GetMessages()[0].GetDeliveryCode() == "" {
			t.Fatalf("sms-dispatch's message = %v, %v", m, err)
		}
	}
}

// Failover with --sms-providers=aliyun,tencent, the aliyun gateway down (its listener closed): every
// code arrives through the Tencent fake, once each (0 lost, 0 duplicated), under the same message id
// sms-dispatch shows, and passes.
func TestFailoverAliyunDownCodesArriveThroughTencent(t *testing.T) {
	s := startSuite(t, options{smsProvider: "aliyun,tencent"})
	principal := person("吴十", "13812345678")
	web := person("冯二", "13987654321")
	third := person("陈三", "13700001111")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "failover.cn", Person: web}))
	s.submit(firstFiling(third, &filingv1.Website{Domain: "failover2.cn", Person: third}))
	codes := s.waitCodes(1, phoneA, phoneB, phoneC)
	got := s.gateway.tencent.Accepted()
	seen := map[string]bool{}
	for _, a := range got {
		if seen[a.MessageID] {
			t.Fatalf("tencent was handed message %s twice: %+v", a.MessageID, got)
		}
		seen[a.MessageID] = true
	}
	if len(got) != 3 {
		t.Fatalf("tencent accepted %d messages, want 3 (one per verifier): %+v", len(got), got)
	}
	eventually(t, 10*time.Second, "the messages SENT by tencent", func() (bool, string) {
		msgs, err := s.SMS.ListMessages(ctx(t), &smsv1.ListMessagesRequest{OrderId: order.OrderId})
		if err != nil || len(msgs.GetMessages()) != 2 {
			return false, fmt.Sprint(msgs, err)
		}
		for _, m := range msgs.GetMessages() {
			if !seen[m.GetMessageId()] || m.GetProvider() != "tencent" || m.GetState() != smsv1.MessageState_MESSAGE_STATE_SENT {
				return false, fmt.Sprint(msgs)
			}
		}
		return true, ""
	})
	for phone, p := range map[string]*filingv1.Person{phoneA: principal, phoneB: web} {
		if _, err := s.verify(phone, codes[phone], tailOf(p)); err != nil {
			t.Fatalf("verify %s: %v", phone, err)
		}
	}
	s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
}
