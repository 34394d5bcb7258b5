package e2e

import (
	"fmt"
	"testing"
	"time"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// The suite with --sms-provider=cmpp against the fake ISMG: the link drops with the first submit
// unanswered, the message is sent again (once: the gateway accepted it once), the code passes,
// and the gateway's status report (DELIVER) makes the verifier's status show delivered.
func TestCMPPCodeArrivesAndReportShowsDelivered(t *testing.T) {
	s := startSuite(t, options{smsProvider: "cmpp"})
	s.gateway.cmpp.Reports(300*time.Millisecond, false) // the report comes after the SENT mark, mostly
	s.gateway.cmpp.DropAfter(1)
	principal := person("钱七", "13812345678")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "cmpp.cn", Person: principal}))
	codes := s.waitCodes(1, phoneA)
	got := s.gateway.cmpp.Messages()
	if len(got) != 1 || got[0].SrcID != "10690001" || s.gateway.cmpp.Connects() < 2 {
		t.Fatalf("the fake accepted %+v over %d logins, want one message after a reconnect", got, s.gateway.cmpp.Connects())
	}
	eventually(t, 15*time.Second, "the report to reach the status", func() (bool, string) {
		st, err := s.Verification.GetVerificationStatus(ctx(t), &verificationv1.GetVerificationStatusRequest{OrderId: order.OrderId})
		if err != nil {
			return false, err.Error()
		}
		v := st.GetStatus().GetVerifiers()[0]
		return v.GetDelivery() == verificationv1.CodeDelivery_CODE_DELIVERY_DELIVERED, fmt.Sprint(v)
	})
	msgs, err := s.SMS.ListMessages(ctx(t), &smsv1.ListMessagesRequest{OrderId: order.OrderId})
	if err != nil || len(msgs.GetMessages()) != 1 || msgs.GetMessages()[0].GetProvider() != "cmpp" ||
		msgs.GetMessages()[0].GetState() != smsv1.MessageState_MESSAGE_STATE_DELIVERED || msgs.GetMessages()[0].GetDeliveryCode() != "DELIVRD" {
		t.Fatalf("sms-dispatch's messages = %v, %v", msgs, err)
	}
	resp, err := s.verify(phoneA, codes[phoneA], tailOf(principal))
	if err != nil || resp.GetResult() != verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("verify: %v, %v", resp, err)
	}
	if n := len(s.gateway.cmpp.Messages()); n != 1 {
		t.Fatalf("the gateway accepted %d messages, want 1", n)
	}
	s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
}
