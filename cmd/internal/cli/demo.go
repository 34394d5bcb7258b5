package cli

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/pkg/pii"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// How long the demo waits for the codes to show in the message list and for the order to reach review.
var (
	demoCodeWait   = 15 * time.Second
	demoReviewWait = 10 * time.Second
)

// demoError is a demo step that did not go as the walk-through expects.
type demoError struct {
	step int
	msg  string
}

func (e *demoError) Error() string { return fmt.Sprintf("demo step %d: %s", e.step, e.msg) }

// demoStep is one step in the JSON document of `demo --output json`.
type demoStep struct {
	Step     int             `json:"step"`
	Title    string          `json:"title"`
	Response json.RawMessage `json:"response,omitempty"`
	Error    *demoStatus     `json:"error,omitempty"`
	Notes    []string        `json:"notes,omitempty"`
}

type demoStatus struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Reason  string `json:"reason,omitempty"`
}

type demo struct {
	a     *app
	n     int
	steps []*demoStep
}

func (d *demo) step(title string) {
	d.n++
	d.steps = append(d.steps, &demoStep{Step: d.n, Title: title})
	if !d.a.json() {
		fmt.Fprintf(d.a.stdout, "\n%d. %s\n", d.n, title)
	}
}

func (d *demo) say(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	cur := d.steps[len(d.steps)-1]
	cur.Notes = append(cur.Notes, line)
	if !d.a.json() {
		fmt.Fprintf(d.a.stdout, "   %s\n", line)
	}
}

func (d *demo) response(m proto.Message) { d.steps[len(d.steps)-1].Response = rawJSON(m) }

func (d *demo) fail(format string, args ...any) error {
	return &demoError{step: d.n, msg: fmt.Sprintf(format, args...)}
}

// finish prints the JSON document (in text mode everything is printed already).
func (d *demo) finish(final string) error {
	if d.a.json() {
		return d.a.emitJSON(struct {
			Steps      []*demoStep `json:"steps"`
			FinalState string      `json:"final_state"`
		}{d.steps, final})
	}
	return nil
}

type demoPerson struct {
	name, id, phone, e164, masked string
}

func runDemo(ctx context.Context, a *app, args []string) error {
	if _, err := a.parse(a.flags("demo"), args); err != nil {
		return err
	}
	d := &demo{a: a}
	err := d.run(ctx)
	if err != nil && a.json() {
		_ = d.finish("")
	}
	return err
}

func (d *demo) run(ctx context.Context) error {
	a := d.a
	// Fresh phones every run: the SMS side caps messages per phone (1 a minute by default), and a
	// phone with two open sessions would make the demo's checks ambiguous.
	pa, pb := randomMobile(), randomMobile()
	for pii.MaskPhone(mustE164(pb)) == pii.MaskPhone(mustE164(pa)) {
		pb = randomMobile()
	}
	alice := demoPerson{name: "张三", id: "110105198806051237", phone: pa}
	bob := demoPerson{name: "李四", id: "310104199003072347", phone: pb}
	for _, p := range []*demoPerson{&alice, &bob} {
		p.e164 = mustE164(p.phone)
		p.masked = pii.MaskPhone(p.e164)
	}
	suffix := randomDigits(6)
	siteA, siteB := "www.demo"+suffix+".cn", "shop.demo"+suffix+".cn"
	person := func(p demoPerson) *filingv1.Person {
		return &filingv1.Person{Name: p.name, IdType: filingv1.IdDocumentType_ID_DOCUMENT_TYPE_RESIDENT_ID_CARD, IdNumber: p.id, Phone: p.phone}
	}
	spec := &filingv1.OrderSpec{
		FilingType:  filingv1.FilingType_FILING_TYPE_FIRST_FILING,
		SubjectName: "演示科技有限公司", SubjectType: filingv1.SubjectType_SUBJECT_TYPE_ORGANIZATION,
		Principal: person(alice),
		Websites: []*filingv1.Website{
			{Domain: siteA, Name: "演示官网", Person: person(alice)},
			{Domain: siteB, Name: "演示商城", Person: person(bob)},
		},
	}
	if !a.json() {
		fmt.Fprintf(a.stdout, "icpctl demo: SMS verification of a FIRST_FILING order with two verifiers\n")
		fmt.Fprintf(a.stdout, "services: filing %s, verification %s, sms-dispatch %s\n", a.g.filingAddr, a.g.verificationAddr, a.g.smsAddr)
	}

	// 1. create
	d.step("create a FIRST_FILING order (filing.CreateOrder)")
	d.say("principal %s, phone A %s; website %s: %s (phone A); website %s: %s, phone B %s",
		alice.name, alice.masked, siteA, alice.name, siteB, bob.name, bob.masked)
	created, err := call(ctx, a, svcFiling, func(ctx context.Context, c *grpc.ClientConn) (*filingv1.CreateOrderResponse, error) {
		return filingClient(c).CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: newRequestID(), Spec: spec})
	})
	if err != nil {
		return err
	}
	d.response(created)
	orderID := created.GetOrder().GetOrderId()
	d.say("-> order %s, state %s", orderID, shortEnum(created.GetOrder().GetState()))

	// 2. submit
	d.step("submit it (filing.SubmitOrder): one verifier per distinct phone, codes are sent")
	submitted, err := call(ctx, a, svcFiling, func(ctx context.Context, c *grpc.ClientConn) (*filingv1.SubmitOrderResponse, error) {
		return filingClient(c).SubmitOrder(ctx, &filingv1.SubmitOrderRequest{RequestId: newRequestID(), OrderId: orderID})
	})
	if err != nil {
		return err
	}
	d.response(submitted)
	o := submitted.GetOrder()
	d.say("-> state %s, deadline %s", shortEnum(o.GetState()), fmtDeadline(o.GetDeadlineAt()))
	for _, v := range o.GetVerifiers() {
		d.say("   verifier %s for %s", v.GetPhoneMasked(), strings.Join(v.GetRoles(), ", "))
	}
	if len(o.GetVerifiers()) != 2 {
		return d.fail("expected 2 verifiers (phone A for the principal and %s, phone B for %s), the service computed %d",
			siteA, siteB, len(o.GetVerifiers()))
	}

	// 3. codes
	d.step("read the codes from the development message list (sms-dispatch.ListMessages, console provider)")
	codes, msgs, err := d.waitForCodes(ctx, orderID, alice.masked, bob.masked)
	if err != nil {
		return err
	}
	d.response(&smsv1.ListMessagesResponse{Messages: msgs})
	for _, m := range msgs {
		d.say("%s: %s", m.GetPhoneMasked(), m.GetBody())
	}

	// 4. a wrong check
	wrong := fmt.Sprintf("%06d", (atoi(codes[alice.masked])+1)%1000000)
	d.step("a wrong check: phone A with a wrong code (verification.Verify)")
	_, err = call(ctx, a, svcVerification, func(ctx context.Context, c *grpc.ClientConn) (*verificationv1.VerifyResponse, error) {
		return verificationClient(c).Verify(ctx, &verificationv1.VerifyRequest{Phone: alice.phone, Code: wrong, IdTail: iddoc.Tail(alice.id)})
	})
	if err == nil {
		return d.fail("a wrong code was accepted")
	}
	st, ok := status.FromError(unwrapCall(err))
	if !ok || unreachable(unwrapCall(err)) {
		return err
	}
	reason := rpc.Reason(unwrapCall(err))
	d.steps[len(d.steps)-1].Error = &demoStatus{Code: st.Code().String(), Message: st.Message(), Reason: reason}
	d.say("-> %s, reason %s: %s", st.Code(), reason, st.Message())
	d.say("   (the same answer for a wrong code, a wrong ID tail or an unknown phone: nothing tells which)")
	if reason != rpc.ReasonName(verificationv1.ErrorReason_ERROR_REASON_VERIFICATION_NOT_MATCHED) {
		return d.fail("expected the uniform answer with reason VERIFICATION_NOT_MATCHED, got %s", statusLine(unwrapCall(err)))
	}

	// 5 and 6. the two correct checks
	for _, v := range []struct {
		p     demoPerson
		label string
		want  verificationv1.VerifyResult
	}{
		{alice, "A", verificationv1.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS},
		{bob, "B", verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED},
	} {
		d.step(fmt.Sprintf("verify phone %s %s with its code and ID tail %s (verification.Verify)", v.label, v.p.masked, iddoc.Tail(v.p.id)))
		resp, err := call(ctx, a, svcVerification, func(ctx context.Context, c *grpc.ClientConn) (*verificationv1.VerifyResponse, error) {
			return verificationClient(c).Verify(ctx, &verificationv1.VerifyRequest{Phone: v.p.phone, Code: codes[v.p.masked], IdTail: iddoc.Tail(v.p.id)})
		})
		if err != nil {
			return err
		}
		d.response(resp)
		d.say("-> %s", shortEnum(resp.GetResult()))
		d.say("   zh: %s", resp.GetMessageZh())
		d.say("   en: %s", resp.GetMessageEn())
		if resp.GetResult() != v.want {
			return d.fail("expected %s, got %s", shortEnum(v.want), shortEnum(resp.GetResult()))
		}
	}

	// 7. the order moves to review
	d.step("the order goes to the administration's review (filing.GetOrder)")
	final, err := d.waitForReview(ctx, orderID)
	if err != nil {
		return err
	}
	d.response(final)
	for _, h := range final.GetHistory() {
		d.say("%s  %s -> %s  by %s  %s", fmtTime(h.GetAt()), fromState(h.GetFrom()), shortEnum(h.GetTo()), orDash(h.GetActor()), h.GetReason())
	}
	state := shortEnum(final.GetState())
	if final.GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW {
		return d.fail("order %s is %s after %s, expected UNDER_REVIEW", orderID, state, demoReviewWait)
	}
	if err := d.finish(state); err != nil {
		return err
	}
	if !a.json() {
		fmt.Fprintf(a.stdout, "\norder %s: %s\n", orderID, state)
	}
	return nil
}

var (
	codeInText = regexp.MustCompile(`(?:核验码为|code is )(\d{6})`)
	sixDigits  = regexp.MustCompile(`(?:^|\D)(\d{6})(?:\D|$)`)
)

// waitForCodes polls the order's messages until one per phone shows its text, and returns the codes
// by masked phone.
func (d *demo) waitForCodes(ctx context.Context, orderID string, masked ...string) (map[string]string, []*smsv1.Message, error) {
	stop := time.Now().Add(demoCodeWait)
	var msgs []*smsv1.Message
	for {
		var err error
		msgs, err = listMessages(ctx, d.a, orderID, 100)
		if err != nil {
			return nil, nil, err
		}
		codes := map[string]string{}
		var newest []*smsv1.Message
		for _, m := range msgs { // newest first: the first message of a phone holds its valid code
			if _, seen := codes[m.GetPhoneMasked()]; seen {
				continue
			}
			match := codeInText.FindStringSubmatch(m.GetBody())
			if match == nil {
				match = sixDigits.FindStringSubmatch(m.GetBody())
			}
			if match != nil {
				codes[m.GetPhoneMasked()] = match[1]
				newest = append(newest, m)
			}
		}
		complete := true
		for _, p := range masked {
			if codes[p] == "" {
				complete = false
			}
		}
		if complete {
			return codes, newest, nil
		}
		if time.Now().After(stop) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	var states []string
	for _, m := range msgs {
		states = append(states, fmt.Sprintf("%s %s body=%q", m.GetPhoneMasked(), shortEnum(m.GetState()), m.GetBody()))
	}
	if len(msgs) < len(masked) {
		return nil, nil, d.fail("after %s sms-dispatch at %s lists %d message(s) for order %s, expected %d (%s); "+
			"check the verification and sms-dispatch logs", demoCodeWait, d.a.g.smsAddr, len(msgs), orderID, len(masked), strings.Join(states, "; "))
	}
	return nil, nil, d.fail("after %s the messages of order %s still show no text with a code (%s): the demo reads the codes "+
		"from sms-dispatch's message list, which shows the text only in development mode (--sms-provider=console, as "+
		"the development server runs it); is sms-dispatch at %s such a server?", demoCodeWait, orderID, strings.Join(states, "; "), d.a.g.smsAddr)
}

func (d *demo) waitForReview(ctx context.Context, orderID string) (*filingv1.Order, error) {
	stop := time.Now().Add(demoReviewWait)
	for {
		resp, err := call(ctx, d.a, svcFiling, func(ctx context.Context, c *grpc.ClientConn) (*filingv1.GetOrderResponse, error) {
			return filingClient(c).GetOrder(ctx, &filingv1.GetOrderRequest{OrderId: orderID})
		})
		if err != nil {
			return nil, err
		}
		o := resp.GetOrder()
		if o.GetState() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION || time.Now().After(stop) {
			return o, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// mobilePrefixes are common mainland mobile prefixes.
var mobilePrefixes = []string{"134", "135", "136", "137", "138", "139", "150", "151", "152", "157", "158", "159", "182", "183", "187", "188"}

func randomMobile() string {
	return mobilePrefixes[randInt(len(mobilePrefixes))] + randomDigits(8)
}

func randomDigits(n int) string {
	var b strings.Builder
	for range n {
		b.WriteByte(byte('0' + randInt(10)))
	}
	return b.String()
}

func randInt(n int) int {
	v, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return int(v.Int64())
}

func mustE164(p string) string {
	e, err := phone.Normalize("phone", p)
	if err != nil {
		panic(fmt.Sprintf("demo phone %s: %v", pii.MaskPhone(p), err)) // programmer error: the prefixes above are mobile
	}
	return e
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
