package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
	"github.com/icpverify/icpverify/services/verification/internal/store/storetest"
)

// firstMessage is the first SendMessage call queued for phone.
func (e *env) firstMessage(t *testing.T, phone string) *smsv1.SendMessageRequest {
	t.Helper()
	rows, err := outbox.PGQueue{Pool: e.pool, Keys: storetest.SealKeys()}.Pending(context.Background(), 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Target != convert.TargetSendMessage {
			continue
		}
		m := &smsv1.SendMessageRequest{}
		if err := proto.Unmarshal(r.Payload, m); err != nil {
			t.Fatal(err)
		}
		if m.GetPhone() == phone {
			return m
		}
	}
	t.Fatalf("no message for %s", phone)
	return nil
}

// ReportDelivery through gRPC: a FAILED report voids the code (the public Verify answers the uniform
// mismatch, the owner's status shows code_undelivered); malformed reports name their field.
func TestReportDelivery(t *testing.T) {
	e := newEnv(t)
	e.open(t)
	ctx := context.Background()
	m := e.firstMessage(t, "+8613812345678")
	req := &pb.ReportDeliveryRequest{RequestId: "delivery:" + m.GetMessageId() + ":FAILED", MessageId: m.GetMessageId(),
		OrderId: m.GetOrderId(), State: pb.DeliveryState_DELIVERY_STATE_FAILED, Reason: "expired"}
	if r, err := e.internal.ReportDelivery(ctx, req); err != nil || !r.GetVoided() {
		t.Fatalf("report = %v, %v", r, err)
	}
	if _, err := e.public.Verify(ctx, &pb.VerifyRequest{Phone: "13812345678", Code: m.GetParams()["code"], IdTail: "12345X"}); status.Code(err) != codes.NotFound ||
		rpc.Reason(err) != domain.ReasonNotMatched {
		t.Fatalf("verify with the voided code = %v", err)
	}
	st, err := e.public.GetVerificationStatus(ctx, &pb.GetVerificationStatusRequest{OrderId: "o1"})
	if err != nil || !st.GetStatus().GetVerifiers()[0].GetCodeUndelivered() || st.GetStatus().GetVerifiers()[1].GetCodeUndelivered() {
		t.Fatalf("status = %v, %v", st, err)
	}

	for _, c := range []struct {
		name   string
		change func(*pb.ReportDeliveryRequest)
		field  string
		reason string
	}{
		{"no message id", func(r *pb.ReportDeliveryRequest) { r.MessageId = "" }, "message_id", domain.ReasonInvalidMessageID},
		{"no order id", func(r *pb.ReportDeliveryRequest) { r.OrderId = "" }, "order_id", "MISSING_ORDER_ID"},
		{"no state", func(r *pb.ReportDeliveryRequest) { r.State = pb.DeliveryState_DELIVERY_STATE_UNSPECIFIED }, "state", domain.ReasonInvalidDeliveryState},
		{"long reason", func(r *pb.ReportDeliveryRequest) { r.Reason = strings.Repeat("r", 65) }, "reason", domain.ReasonInvalidDeliveryReason},
		{"long request id", func(r *pb.ReportDeliveryRequest) { r.RequestId = strings.Repeat("r", 129) }, "request_id", "INVALID_REQUEST_ID"},
	} {
		bad := proto.Clone(req).(*pb.ReportDeliveryRequest)
		c.change(bad)
		_, err := e.internal.ReportDelivery(ctx, bad)
		if status.Code(err) != codes.InvalidArgument || rpc.Reason(err) != c.reason || !strings.Contains(status.Convert(err).Message(), c.field) {
			t.Errorf("%s: %v (reason %q), want InvalidArgument %s naming %s", c.name, err, rpc.Reason(err), c.reason, c.field)
		}
	}
}
