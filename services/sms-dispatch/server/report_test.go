package server_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// fakeVerification records the delivery reports it receives.
type fakeVerification struct {
	verificationv1.UnimplementedVerificationInternalServiceServer
	reports chan *verificationv1.ReportDeliveryRequest
}

func (f *fakeVerification) ReportDelivery(_ context.Context, req *verificationv1.ReportDeliveryRequest) (*verificationv1.ReportDeliveryResponse, error) {
	f.reports <- req
	return &verificationv1.ReportDeliveryResponse{Voided: true}, nil
}

// TestRunReportsFailuresToVerification: the service's relay delivers the report of a message the
// gateway refused for good to --verification-addr.
func TestRunReportsFailuresToVerification(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeVerification{reports: make(chan *verificationv1.ReportDeliveryRequest, 10)}
	gs := grpc.NewServer()
	verificationv1.RegisterVerificationInternalServiceServer(gs, fake)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "number not reachable", http.StatusBadRequest)
	}))
	t.Cleanup(gateway.Close)

	client := run(t, "--store", "memory", "--sms-provider", "webhook", "--webhook-url", gateway.URL, "--max-attempts", "1",
		"--verification-addr", lis.Addr().String())
	req := &smsv1.SendMessageRequest{MessageId: "vc-s-v1-1", Phone: "13812345678", Template: smsv1.Template_TEMPLATE_VERIFICATION_CODE,
		Params: map[string]string{"code": "123456"}, ExpireTime: timestamppb.New(time.Now().Add(time.Hour)), OrderId: "order-r"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		callCtx, c := context.WithTimeout(context.Background(), time.Second)
		_, err := client.SendMessage(callCtx, req)
		c()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("SendMessage never succeeded: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case r := <-fake.reports:
		if r.GetMessageId() != "vc-s-v1-1" || r.GetOrderId() != "order-r" || r.GetState() != verificationv1.DeliveryState_DELIVERY_STATE_FAILED ||
			r.GetReason() != "provider refused" || r.GetRequestId() != "delivery:vc-s-v1-1:FAILED" {
			t.Fatalf("report = %v", r)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no delivery report reached verification")
	}
}
