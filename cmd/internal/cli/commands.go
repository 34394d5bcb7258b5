package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
)

func runCreate(ctx context.Context, a *app, args []string) error {
	fs := a.flags("create")
	file := fs.String("f", "", "order file (YAML or JSON OrderSpec)")
	fs.StringVar(file, "file", "", "order file (YAML or JSON OrderSpec)")
	if _, err := a.parse(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return usagef("create needs -f FILE (a YAML or JSON OrderSpec; examples in examples/orders)")
	}
	spec, err := ReadSpecFile(*file)
	if err != nil {
		return usageError{err.Error()}
	}
	resp, err := call(ctx, a, svcFiling, func(ctx context.Context, c *grpc.ClientConn) (*filingv1.CreateOrderResponse, error) {
		return filingClient(c).CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: newRequestID(), Spec: spec})
	})
	if err != nil {
		return err
	}
	return a.emit(resp, func(w io.Writer) {
		fmt.Fprintf(w, "created order %s (%s)\n", resp.GetOrder().GetOrderId(), shortEnum(resp.GetOrder().GetState()))
		orderSummary(w, resp.GetOrder())
		fmt.Fprintf(w, "next\ticpctl submit %s\n", resp.GetOrder().GetOrderId())
	})
}

func runSubmit(ctx context.Context, a *app, args []string) error {
	pos, err := a.parse(a.flags("submit"), args, "ORDER_ID")
	if err != nil {
		return err
	}
	resp, err := call(ctx, a, svcFiling, func(ctx context.Context, c *grpc.ClientConn) (*filingv1.SubmitOrderResponse, error) {
		return filingClient(c).SubmitOrder(ctx, &filingv1.SubmitOrderRequest{RequestId: newRequestID(), OrderId: pos[0]})
	})
	if err != nil {
		return err
	}
	return a.emit(resp, func(w io.Writer) {
		o := resp.GetOrder()
		fmt.Fprintf(w, "submitted order %s: %s\n", o.GetOrderId(), shortEnum(o.GetState()))
		orderSummary(w, o)
		if o.GetState() == filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
			fmt.Fprintf(w, "next\teach verifier runs: icpctl verify --phone PHONE --code CODE --id-tail LAST6\n")
		}
	})
}

// statusDoc is the JSON document of `status`: the parts from the four services.
type statusDoc struct {
	Order        json.RawMessage   `json:"order"`
	Verification json.RawMessage   `json:"verification,omitempty"`
	Deadline     json.RawMessage   `json:"deadline,omitempty"`
	Messages     []json.RawMessage `json:"messages"`
}

func runStatus(ctx context.Context, a *app, args []string) error {
	pos, err := a.parse(a.flags("status"), args, "ORDER_ID")
	if err != nil {
		return err
	}
	id := pos[0]
	order, err := call(ctx, a, svcFiling, func(ctx context.Context, c *grpc.ClientConn) (*filingv1.GetOrderResponse, error) {
		return filingClient(c).GetOrder(ctx, &filingv1.GetOrderRequest{OrderId: id})
	})
	if err != nil {
		return err
	}
	// A DRAFT order has no session, timer or messages yet: those two reasons mean "none"; any other
	// error (another NotFound included) is shown.
	vs, err := call(ctx, a, svcVerification, func(ctx context.Context, c *grpc.ClientConn) (*verificationv1.GetVerificationStatusResponse, error) {
		return verificationClient(c).GetVerificationStatus(ctx, &verificationv1.GetVerificationStatusRequest{OrderId: id})
	})
	if err = ignoreReason(err, verificationv1.ErrorReason_ERROR_REASON_SESSION_NOT_FOUND); err != nil {
		return err
	}
	dl, err := call(ctx, a, svcDeadline, func(ctx context.Context, c *grpc.ClientConn) (*deadlinev1.GetDeadlineResponse, error) {
		return deadlineClient(c).GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{OrderId: id})
	})
	if err = ignoreReason(err, deadlinev1.ErrorReason_ERROR_REASON_DEADLINE_NOT_FOUND); err != nil {
		return err
	}
	msgs, err := listMessages(ctx, a, id, 100)
	if err != nil {
		return err
	}
	if a.json() {
		doc := statusDoc{Order: rawJSON(order.GetOrder()), Messages: []json.RawMessage{}}
		if vs != nil {
			doc.Verification = rawJSON(vs.GetStatus())
		}
		if dl != nil {
			doc.Deadline = rawJSON(dl.GetDeadline())
		}
		for _, m := range msgs {
			doc.Messages = append(doc.Messages, rawJSON(m))
		}
		return a.emitJSON(doc)
	}
	tw := newTab(a.stdout)
	o := order.GetOrder()
	orderSummary(tw, o)
	if d := dl.GetDeadline(); d != nil {
		line := fmt.Sprintf("%s (submission %d)", shortEnum(d.GetState()), d.GetSubmission())
		if d.GetState() == deadlinev1.DeadlineState_DEADLINE_STATE_FIRED {
			line += fmt.Sprintf(", fired %s, closed=%v", fmtTime(d.GetFireTime()), d.GetClosed())
		}
		fmt.Fprintf(tw, "timer\t%s\n", line)
	}
	if s := vs.GetStatus(); s != nil {
		fmt.Fprintf(tw, "verification\t%s (submission %d)\n", shortEnum(s.GetState()), s.GetSubmission())
		for _, v := range s.GetVerifiers() {
			line := fmt.Sprintf("%s  %-7s  failed %d  resends %d", v.GetPhoneMasked(), shortEnum(v.GetState()),
				v.GetFailedAttempts(), v.GetResendsUsed())
			if v.GetPassedTime() != nil {
				line += "  passed " + fmtTime(v.GetPassedTime())
			}
			fmt.Fprintf(tw, "  %s  verifier_id %s  %s\n", line, v.GetVerifierId(), strings.Join(v.GetRoles(), ", "))
		}
	}
	if len(msgs) > 0 {
		fmt.Fprintln(tw, "messages")
		messageLines(tw, msgs, false)
	}
	historyLines(tw, o)
	return tw.Flush()
}

// ignoreReason drops a NotFound error with the reason r (a generated ErrorReason value) and returns
// every other error.
func ignoreReason(err error, r protoreflect.Enum) error {
	if inner := unwrapCall(err); status.Code(inner) == codes.NotFound && rpc.HasReason(inner, r) {
		return nil
	}
	return err
}

func unwrapCall(err error) error {
	if ce, ok := err.(*callError); ok {
		return ce.err
	}
	return err
}

func listMessages(ctx context.Context, a *app, orderID string, limit int) ([]*smsv1.Message, error) {
	var out []*smsv1.Message
	token := ""
	for {
		resp, err := call(ctx, a, svcSMS, func(ctx context.Context, c *grpc.ClientConn) (*smsv1.ListMessagesResponse, error) {
			return smsClient(c).ListMessages(ctx, &smsv1.ListMessagesRequest{OrderId: orderID, PageSize: int32(min(limit, 100)), PageToken: token})
		})
		if err != nil {
			return nil, err
		}
		out = append(out, resp.GetMessages()...)
		token = resp.GetNextPageToken()
		if token == "" || len(out) >= limit {
			break
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}

func messageLines(w io.Writer, msgs []*smsv1.Message, withOrder bool) {
	for _, m := range msgs {
		body := m.GetBody()
		if body == "" {
			body = "(text not shown)"
			if m.GetRedacted() {
				body = "(redacted)"
			}
		}
		order := ""
		if withOrder {
			order = orDash(m.GetOrderId()) + "\t"
		}
		line := fmt.Sprintf("  %s\t%s%s\t%s\tattempts %d\t%s\t%s", m.GetMessageId(), order, m.GetPhoneMasked(),
			shortEnum(m.GetState()), m.GetAttempts(), fmtTime(m.GetCreateTime()), body)
		if m.GetLastError() != "" {
			line += "  last error: " + m.GetLastError()
		}
		fmt.Fprintln(w, line)
	}
}

func runMessages(ctx context.Context, a *app, args []string) error {
	fs := a.flags("messages")
	order := fs.String("order", "", "only the messages of this order")
	limit := fs.Int("limit", 50, "at most this many messages")
	if _, err := a.parse(fs, args); err != nil {
		return err
	}
	if *limit <= 0 {
		return usagef("--limit must be positive")
	}
	msgs, err := listMessages(ctx, a, *order, *limit)
	if err != nil {
		return err
	}
	return a.emit(&smsv1.ListMessagesResponse{Messages: msgs}, func(w io.Writer) {
		if len(msgs) == 0 {
			fmt.Fprintln(w, "no messages")
			return
		}
		messageLines(w, msgs, *order == "")
	})
}

func runList(ctx context.Context, a *app, args []string) error {
	fs := a.flags("list")
	stateName := fs.String("state", "", "only orders in this state (e.g. AWAITING_VERIFICATION, UNDER_REVIEW)")
	limit := fs.Int("limit", 50, "at most this many orders")
	if _, err := a.parse(fs, args); err != nil {
		return err
	}
	if *limit <= 0 {
		return usagef("--limit must be positive")
	}
	var state filingv1.OrderState
	if *stateName != "" {
		n, err := parseEnum(*stateName, state.Descriptor(), "--state")
		if err != nil {
			return err
		}
		state = filingv1.OrderState(n)
	}
	var orders []*filingv1.Order
	token := ""
	for {
		resp, err := call(ctx, a, svcFiling, func(ctx context.Context, c *grpc.ClientConn) (*filingv1.ListOrdersResponse, error) {
			return filingClient(c).ListOrders(ctx, &filingv1.ListOrdersRequest{State: state, PageSize: int32(min(*limit, 100)), PageToken: token})
		})
		if err != nil {
			return err
		}
		orders = append(orders, resp.GetOrders()...)
		token = resp.GetNextPageToken()
		if token == "" || len(orders) >= *limit {
			break
		}
	}
	if len(orders) > *limit {
		orders = orders[:*limit]
	}
	return a.emit(&filingv1.ListOrdersResponse{Orders: orders}, func(w io.Writer) {
		if len(orders) == 0 {
			fmt.Fprintln(w, "no orders")
			return
		}
		fmt.Fprintln(w, "ORDER\tSTATE\tTYPE\tSUBJECT\tSERVICES\tUPDATED")
		for _, o := range orders {
			var domains []string
			for _, s := range o.GetSpec().GetWebsites() {
				domains = append(domains, s.GetDomain())
			}
			for _, s := range o.GetSpec().GetServices() {
				domains = append(domains, s.GetName())
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", o.GetOrderId(), shortEnum(o.GetState()), shortEnum(o.GetSpec().GetFilingType()),
				orDash(o.GetSpec().GetSubjectName()), orDash(strings.Join(domains, ",")), fmtTime(o.GetUpdateTime()))
		}
	})
}

func printVerify(w io.Writer, r *verificationv1.VerifyResponse) {
	fmt.Fprintf(w, "result\t%s\n", shortEnum(r.GetResult()))
	fmt.Fprintf(w, "order\t%s\n", r.GetOrderId())
	fmt.Fprintf(w, "message_zh\t%s\n", r.GetMessageZh())
	fmt.Fprintf(w, "message_en\t%s\n", r.GetMessageEn())
}

func runVerify(ctx context.Context, a *app, args []string) error {
	fs := a.flags("verify")
	phone := fs.String("phone", "", "the verifier's mobile number")
	code := fs.String("code", "", "the 6-digit code from the SMS")
	tail := fs.String("id-tail", "", "the last 6 characters of the verifier's ID document number")
	if _, err := a.parse(fs, args); err != nil {
		return err
	}
	if *phone == "" || *code == "" || *tail == "" {
		return usagef("verify needs --phone, --code and --id-tail")
	}
	resp, err := call(ctx, a, svcVerification, func(ctx context.Context, c *grpc.ClientConn) (*verificationv1.VerifyResponse, error) {
		return verificationClient(c).Verify(ctx, &verificationv1.VerifyRequest{Phone: *phone, Code: *code, IdTail: *tail})
	})
	if err != nil {
		return err
	}
	return a.emit(resp, func(w io.Writer) { printVerify(w, resp) })
}

func runResend(ctx context.Context, a *app, args []string) error {
	fs := a.flags("resend")
	phone := fs.String("phone", "", "public: the verifier's mobile number")
	tail := fs.String("id-tail", "", "public: the last 6 characters of the verifier's ID document number")
	order := fs.String("order", "", "internal: the order")
	verifier := fs.String("verifier", "", "internal: the verifier_id (see icpctl status)")
	if _, err := a.parse(fs, args); err != nil {
		return err
	}
	public := *phone != "" || *tail != ""
	internal := *order != "" || *verifier != ""
	var resend *verificationv1.Resend
	switch {
	case public && internal:
		return usagef("resend takes either --phone and --id-tail (public) or --order and --verifier (internal), not both")
	case public:
		if *phone == "" || *tail == "" {
			return usagef("resend needs both --phone and --id-tail")
		}
		resp, err := call(ctx, a, svcVerification, func(ctx context.Context, c *grpc.ClientConn) (*verificationv1.ResendCodeResponse, error) {
			return verificationClient(c).ResendCode(ctx, &verificationv1.ResendCodeRequest{RequestId: newRequestID(), Phone: *phone, IdTail: *tail})
		})
		if err != nil {
			return err
		}
		if a.json() {
			return a.emit(resp, nil)
		}
		resend = resp.GetResend()
	case internal:
		if *order == "" || *verifier == "" {
			return usagef("resend needs both --order and --verifier")
		}
		resp, err := call(ctx, a, svcVerification, func(ctx context.Context, c *grpc.ClientConn) (*verificationv1.ResendVerifierCodeResponse, error) {
			return verificationInternal(c).ResendVerifierCode(ctx, &verificationv1.ResendVerifierCodeRequest{RequestId: newRequestID(), OrderId: *order, VerifierId: *verifier})
		})
		if err != nil {
			return err
		}
		if a.json() {
			return a.emit(resp, nil)
		}
		resend = resp.GetResend()
	default:
		return usagef("resend needs --phone and --id-tail, or --order and --verifier")
	}
	tw := newTab(a.stdout)
	fmt.Fprintf(tw, "a new code was sent; the previous one no longer works\n")
	fmt.Fprintf(tw, "order\t%s\n", resend.GetOrderId())
	fmt.Fprintf(tw, "verifier\t%s\n", resend.GetVerifierId())
	fmt.Fprintf(tw, "resends left\t%d\n", resend.GetResendsLeft())
	fmt.Fprintf(tw, "next resend\t%s\n", fmtTime(resend.GetNextResendTime()))
	fmt.Fprintf(tw, "deadline\t%s\n", fmtDeadline(resend.GetDeadlineAt()))
	return tw.Flush()
}

func runCancel(ctx context.Context, a *app, args []string) error {
	fs := a.flags("cancel")
	reason := fs.String("reason", "", "why the order is cancelled (recorded in its history)")
	pos, err := a.parse(fs, args, "ORDER_ID")
	if err != nil {
		return err
	}
	resp, err := call(ctx, a, svcFiling, func(ctx context.Context, c *grpc.ClientConn) (*filingv1.CancelOrderResponse, error) {
		return filingClient(c).CancelOrder(ctx, &filingv1.CancelOrderRequest{RequestId: newRequestID(), OrderId: pos[0], Reason: *reason})
	})
	if err != nil {
		return err
	}
	return a.emit(resp, func(w io.Writer) {
		fmt.Fprintf(w, "order %s: %s\n", resp.GetOrder().GetOrderId(), shortEnum(resp.GetOrder().GetState()))
	})
}

func runReview(ctx context.Context, a *app, args []string, approve bool) error {
	name, outcome := "reject", filingv1.ReviewOutcome_REVIEW_OUTCOME_REJECTED
	if approve {
		name, outcome = "approve", filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED
	}
	fs := a.flags(name)
	comment := fs.String("comment", "", "the administration's comment")
	pos, err := a.parse(fs, args, "ORDER_ID")
	if err != nil {
		return err
	}
	resp, err := call(ctx, a, svcFiling, func(ctx context.Context, c *grpc.ClientConn) (*filingv1.RecordReviewOutcomeResponse, error) {
		return filingInternal(c).RecordReviewOutcome(ctx, &filingv1.RecordReviewOutcomeRequest{
			RequestId: newRequestID(), OrderId: pos[0], Outcome: outcome, Comment: *comment})
	})
	if err != nil {
		return err
	}
	return a.emit(resp, func(w io.Writer) {
		o := resp.GetOrder()
		fmt.Fprintf(w, "order %s: %s\n", o.GetOrderId(), shortEnum(o.GetState()))
		if approve && o.GetSpec().GetSubjectId() != "" {
			fmt.Fprintf(w, "subject_id\t%s\t(use it in later orders of this subject)\n", o.GetSpec().GetSubjectId())
		}
	})
}
