package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// residentID completes a 17-digit prefix with its GB 11643 check character.
func residentID(prefix17 string) string {
	weights := []int{7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2}
	sum := 0
	for i, c := range prefix17 {
		sum += int(c-'0') * weights[i]
	}
	return prefix17 + string("10X98765432"[sum%11])
}

var seq atomic.Int64

var (
	idMu    sync.Mutex
	idsUsed []string
)

// person returns a responsible person with a unique valid resident ID and the given phone.
func person(name, phone string) *filingv1.Person {
	id := residentID(fmt.Sprintf("11010519800101%03d", seq.Add(1)%1000))
	idMu.Lock()
	idsUsed = append(idsUsed, id)
	idMu.Unlock()
	return &filingv1.Person{Name: name, IdType: filingv1.IdDocumentType_ID_DOCUMENT_TYPE_RESIDENT_ID_CARD, IdNumber: id, Phone: phone}
}

// usedIDNumbers lists every ID number the tests created, to check none reaches a log.
func usedIDNumbers() []string {
	idMu.Lock()
	defer idMu.Unlock()
	return append([]string(nil), idsUsed...)
}

func tailOf(p *filingv1.Person) string { return p.IdNumber[len(p.IdNumber)-6:] }

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

// submit creates and submits an order; it returns the submitted order.
func (s *suite) submit(spec *filingv1.OrderSpec) *filingv1.Order {
	s.t.Helper()
	created, err := s.Filing.CreateOrder(ctx(s.t), &filingv1.CreateOrderRequest{RequestId: fmt.Sprintf("create-%d", seq.Add(1)), Spec: spec})
	if err != nil {
		s.t.Fatalf("CreateOrder: %v", err)
	}
	submitted, err := s.Filing.SubmitOrder(ctx(s.t), &filingv1.SubmitOrderRequest{RequestId: "submit-" + created.Order.OrderId, OrderId: created.Order.OrderId})
	if err != nil {
		s.t.Fatalf("SubmitOrder: %v", err)
	}
	return submitted.Order
}

// waitState waits until the order reaches state.
func (s *suite) waitState(orderID string, state filingv1.OrderState, limit time.Duration) *filingv1.Order {
	s.t.Helper()
	var order *filingv1.Order
	eventually(s.t, limit, "order "+orderID+" to be "+state.String(), func() (bool, string) {
		resp, err := s.Filing.GetOrder(ctx(s.t), &filingv1.GetOrderRequest{OrderId: orderID})
		if err != nil {
			return false, err.Error()
		}
		order = resp.Order
		return order.State == state, order.State.String()
	})
	return order
}

// waitCodes waits until every phone received n messages and returns the latest code of each.
func (s *suite) waitCodes(n int, phones ...string) map[string]string {
	s.t.Helper()
	codes := map[string]string{}
	eventually(s.t, 20*time.Second, fmt.Sprintf("%d SMS to each of %v", n, phones), func() (bool, string) {
		for _, p := range phones {
			ids := distinctMessages(s.gateway.ForPhone(p))
			if len(ids) < n {
				return false, fmt.Sprintf("%s has %d", p, len(ids))
			}
			posts := s.gateway.ForPhone(p)
			codes[p] = posts[len(posts)-1].Code()
		}
		return true, ""
	})
	return codes
}

func distinctMessages(posts []gatewayPost) []string {
	var ids []string
	seen := map[string]bool{}
	for _, p := range posts {
		if !seen[p.MessageID] {
			seen[p.MessageID] = true
			ids = append(ids, p.MessageID)
		}
	}
	return ids
}

func (s *suite) verify(phone, code, tail string) (*verificationv1.VerifyResponse, error) {
	return s.Verification.Verify(ctx(s.t), &verificationv1.VerifyRequest{Phone: phone, Code: code, IdTail: tail})
}

func wrong(code string) string {
	return fmt.Sprintf("%06d", (atoi(code)+1)%1000000)
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func requireMismatch(t *testing.T, err error) {
	t.Helper()
	if status.Code(err) != codes.NotFound || !rpc.HasReason(err, verificationv1.ErrorReason_ERROR_REASON_VERIFICATION_NOT_MATCHED) {
		t.Fatalf("want the uniform NotFound VERIFICATION_NOT_MATCHED, got %v (reason %q)", err, rpc.Reason(err))
	}
}

func countTransitions(o *filingv1.Order, to filingv1.OrderState) int {
	n := 0
	for _, h := range o.History {
		if h.To == to {
			n++
		}
	}
	return n
}

const (
	phoneA = "+8613812345678"
	phoneB = "+8613987654321"
	phoneC = "+8613700001111"
)

func firstFiling(principal *filingv1.Person, websites ...*filingv1.Website) *filingv1.OrderSpec {
	return &filingv1.OrderSpec{
		FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: "杭州示例科技有限公司",
		SubjectType: filingv1.SubjectType_SUBJECT_TYPE_ORGANIZATION, Principal: principal, Websites: websites,
	}
}

// a. FIRST_FILING, principal + two websites, one website person sharing the principal's phone.
func TestFirstFilingSharedPhone(t *testing.T) {
	s := startSuite(t, options{})
	principal := person("张三", "13812345678")
	shared := &filingv1.Person{Name: principal.Name, IdType: principal.IdType, IdNumber: principal.IdNumber, Phone: "+86 138 1234 5678"}
	other := person("李四", "139-8765-4321")
	order := s.submit(firstFiling(principal,
		&filingv1.Website{Domain: "example.cn", Name: "示例", Person: shared},
		&filingv1.Website{Domain: "example.com.cn", Name: "示例二", Person: other}))
	if order.State != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
		t.Fatalf("submitted order is %v", order.State)
	}
	codes := s.waitCodes(1, phoneA, phoneB)

	resp, err := s.verify("138 1234 5678", codes[phoneA], strings.ToLower(tailOf(principal)))
	if err != nil || resp.Result != verificationv1.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS {
		t.Fatalf("first check: %v %v", resp, err)
	}
	if resp.MessageZh != "您的短信核验完成，请等待其他核验人进行短信核验" {
		t.Errorf("message_zh = %q", resp.MessageZh)
	}
	resp, err = s.verify("86-139-8765-4321", codes[phoneB], tailOf(other))
	if err != nil || resp.Result != verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("second check: %v %v", resp, err)
	}
	if resp.MessageZh != "您的短信核验已全部完成，该请求将提交管局审核" {
		t.Errorf("message_zh = %q", resp.MessageZh)
	}
	final := s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
	if n := countTransitions(final, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW); n != 1 {
		t.Errorf("UNDER_REVIEW recorded %d times", n)
	}
	if got := len(distinctMessages(s.gateway.Posts())); got != 2 {
		t.Errorf("gateway received %d distinct messages, want exactly 2 (one per distinct phone)", got)
	}
	msgs, err := s.SMS.ListMessages(ctx(t), &smsv1.ListMessagesRequest{OrderId: order.OrderId})
	if err != nil || len(msgs.Messages) != 2 {
		t.Fatalf("sms-dispatch lists %v, %v; want 2 messages", msgs, err)
	}
	for _, m := range msgs.Messages {
		if m.State != smsv1.MessageState_MESSAGE_STATE_SENT || m.Body != "" || !m.Redacted {
			t.Errorf("message %s: state %v body %q redacted %v; want SENT and redacted", m.MessageId, m.State, m.Body, m.Redacted)
		}
	}
	// The code is used up: the same check again gets the uniform answer.
	_, err = s.verify(phoneA, codes[phoneA], tailOf(principal))
	requireMismatch(t, err)
}

// b. The window closes before everyone verified: RETURNED (VERIFICATION_TIMEOUT) once; a later check fails.
func TestDeadlineReturnsOrder(t *testing.T) {
	s := startSuite(t, options{window: 3 * time.Second})
	principal := person("王五", "13700001111")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "timeout.cn", Person: principal}))
	codes := s.waitCodes(1, phoneC)
	if order.DeadlineAt == nil || time.Until(order.DeadlineAt.AsTime()) > 4*time.Second {
		t.Fatalf("deadline_at = %v, want about 3s from now", order.DeadlineAt)
	}
	final := s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_RETURNED, 20*time.Second)
	if final.ReturnReason != filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT {
		t.Fatalf("return reason = %v", final.ReturnReason)
	}
	if !time.Now().After(order.DeadlineAt.AsTime()) {
		t.Fatal("returned before the deadline")
	}
	_, err := s.verify(phoneC, codes[phoneC], tailOf(principal))
	requireMismatch(t, err)
	time.Sleep(500 * time.Millisecond) // let any duplicate delivery land before counting
	final = s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_RETURNED, time.Second)
	if n := countTransitions(final, filingv1.OrderState_ORDER_STATE_RETURNED); n != 1 {
		t.Errorf("RETURNED recorded %d times, want once", n)
	}
}

// c. Five wrong checks return the order (TOO_MANY_FAILED_ATTEMPTS).
func TestTooManyFailedAttempts(t *testing.T) {
	s := startSuite(t, options{})
	principal := person("赵六", "13812345678")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "fail.cn", Person: principal}))
	codes := s.waitCodes(1, phoneA)
	for range 5 {
		_, err := s.verify(phoneA, wrong(codes[phoneA]), tailOf(principal))
		requireMismatch(t, err)
	}
	final := s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_RETURNED, 15*time.Second)
	if final.ReturnReason != filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS {
		t.Fatalf("return reason = %v", final.ReturnReason)
	}
	// The right code no longer helps.
	_, err := s.verify(phoneA, codes[phoneA], tailOf(principal))
	requireMismatch(t, err)
}

// d. Resend: the old code fails, the new one passes; a third resend is refused.
func TestResend(t *testing.T) {
	s := startSuite(t, options{})
	principal := person("钱七", "13812345678")
	web := person("孙八", "13987654321")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "resend.cn", Person: web}))
	first := s.waitCodes(1, phoneB)

	// The verifier asks for a new code (public API, phone + ID tail).
	r1, err := s.Verification.ResendCode(ctx(t), &verificationv1.ResendCodeRequest{RequestId: "resend-1", Phone: "13987654321", IdTail: tailOf(web)})
	if err != nil {
		t.Fatalf("first resend: %v", err)
	}
	second := s.waitCodes(2, phoneB)
	// An internal service asks for another (order + verifier).
	_, err = s.VerifyInternal.ResendVerifierCode(ctx(t), &verificationv1.ResendVerifierCodeRequest{
		RequestId: "resend-2", OrderId: order.OrderId, VerifierId: r1.Resend.VerifierId})
	if err != nil {
		t.Fatalf("second resend: %v", err)
	}
	third := s.waitCodes(3, phoneB)
	_, err = s.Verification.ResendCode(ctx(t), &verificationv1.ResendCodeRequest{RequestId: "resend-3", Phone: phoneB, IdTail: tailOf(web)})
	if status.Code(err) != codes.ResourceExhausted || !rpc.HasReason(err, verificationv1.ErrorReason_ERROR_REASON_RESEND_LIMIT_REACHED) {
		t.Fatalf("third resend: %v (reason %q), want ResourceExhausted RESEND_LIMIT_REACHED", err, rpc.Reason(err))
	}
	if got := len(distinctMessages(s.gateway.ForPhone(phoneB))); got != 3 {
		t.Errorf("%d messages to the verifier, want 3 (the refused resend sends nothing)", got)
	}
	for _, old := range []string{first[phoneB], second[phoneB]} {
		if old == third[phoneB] {
			continue // a new draw may repeat an old code by chance (1 in a million)
		}
		_, err = s.verify(phoneB, old, tailOf(web))
		requireMismatch(t, err)
	}
	resp, err := s.verify(phoneB, third[phoneB], tailOf(web))
	if err != nil || resp.Result != verificationv1.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS {
		t.Fatalf("new code: %v %v", resp, err)
	}
	// The resend did not move the deadline.
	st, err := s.Verification.GetVerificationStatus(ctx(t), &verificationv1.GetVerificationStatusRequest{OrderId: order.OrderId})
	if err != nil || !st.Status.DeadlineAt.AsTime().Equal(order.DeadlineAt.AsTime()) {
		t.Fatalf("status deadline %v vs order deadline %v (%v)", st.GetStatus().GetDeadlineAt(), order.DeadlineAt, err)
	}
}
