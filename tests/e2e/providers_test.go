package e2e

import (
	"fmt"
	"testing"
	"time"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
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
	msgs, err := s.SMS.ListMessages(ctx(t), &smsv1.ListMessagesRequest{OrderId: order.OrderId})
	if err != nil || len(msgs.GetMessages()) != 1 || msgs.GetMessages()[0].GetMessageId() != got[0].MessageID ||
		msgs.GetMessages()[0].GetProvider() != "aliyun" {
		t.Fatalf("sms-dispatch's messages = %v, %v; want the one the fake accepted (OutId = message id)", msgs, err)
	}
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
