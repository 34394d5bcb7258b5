package grpcapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/grpcapi"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/storetest"
)

var t0 = time.Date(2026, 11, 26, 2, 0, 0, 0, time.UTC)

type okProvider struct{}

func (okProvider) Name() string { return "fake" }
func (okProvider) Send(context.Context, provider.Message) (provider.Accepted, error) {
	return provider.Accepted{}, nil
}

type fixture struct {
	client smsv1.SmsDispatchServiceClient
	disp   *dispatcher.Dispatcher
	clock  *clock.Fake
}

// start serves the API on PostgreSQL; dev is development mode (the console provider): the API shows
// the text and the dispatcher keeps it after sending.
func start(t *testing.T, dev bool) fixture {
	t.Helper()
	pool := pgtest.NewSchema(t, "smsapi", store.Migrations)
	clk := clock.NewFake(t0)
	st := store.New(pool, clk, storetest.SealKeys())
	conn := rpctest.Serve(t, func(srv *rpc.Server) {
		smsv1.RegisterSmsDispatchServiceServer(srv.GRPC, &grpcapi.Server{Store: st, Clock: clk, Log: zap.NewNop(), Signature: "ICP备案", ShowText: dev})
	})
	disp := &dispatcher.Dispatcher{Store: st, Provider: okProvider{}, Clock: clk, Log: zap.NewNop(), Caps: domain.DefaultCaps, Sender: "12381", KeepText: dev}
	return fixture{client: smsv1.NewSmsDispatchServiceClient(conn), disp: disp, clock: clk}
}

const wantBody = "[ICP Filing] Your SMS verification code is 123456. Complete verification in the filing system before 2026-11-27 10:00 (UTC+8)."

func validReq(id string) *smsv1.SendMessageRequest {
	return &smsv1.SendMessageRequest{MessageId: id, Phone: "+8613812345678", Template: smsv1.Template_TEMPLATE_VERIFICATION_CODE,
		Params: map[string]string{"code": "123456", "deadline": "2026-11-27T02:00:00Z"}, Locale: "en",
		ExpireTime: timestamppb.New(t0.Add(24 * time.Hour)), OrderId: "order-1"}
}

func TestSendGetList(t *testing.T) {
	t.Parallel()
	f := start(t, false)
	ctx := context.Background()
	resp, err := f.client.SendMessage(ctx, validReq("vc-1"))
	if err != nil {
		t.Fatal(err)
	}
	// Outside development mode no response carries the text, not even while the message is queued.
	m := resp.GetMessage()
	if m.GetPhoneMasked() != "138****5678" || m.GetState() != smsv1.MessageState_MESSAGE_STATE_QUEUED || m.GetBody() != "" || !m.GetRedacted() {
		t.Fatalf("SendMessage = %v", m)
	}
	// A repeat returns the stored message.
	again, err := f.client.SendMessage(ctx, validReq("vc-1"))
	if err != nil || again.GetMessage().GetCreateTime().AsTime() != m.GetCreateTime().AsTime() {
		t.Fatalf("repeat = %v, %v", again, err)
	}
	// Another phone under the same id is refused.
	reuse := validReq("vc-1")
	reuse.Phone = "13912345678"
	if _, err := f.client.SendMessage(ctx, reuse); status.Code(err) != codes.AlreadyExists || rpc.Reason(err) != domain.ReasonMessageIDReused {
		t.Fatalf("reuse: %v", err)
	}

	if _, err := f.disp.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := f.client.GetMessage(ctx, &smsv1.GetMessageRequest{MessageId: "vc-1"})
	if err != nil {
		t.Fatal(err)
	}
	if gm := got.GetMessage(); gm.GetState() != smsv1.MessageState_MESSAGE_STATE_SENT || gm.GetBody() != "" || !gm.GetRedacted() ||
		gm.GetSentTime() == nil || gm.GetProvider() != "fake" || gm.GetPhoneMasked() != "138****5678" {
		t.Fatalf("GetMessage after send = %v", gm)
	}

	page0, err := f.client.ListMessages(ctx, &smsv1.ListMessagesRequest{})
	if err != nil || len(page0.GetMessages()) != 1 || page0.GetMessages()[0].GetBody() != "" || !page0.GetMessages()[0].GetRedacted() {
		t.Fatalf("ListMessages = %v, %v", page0, err)
	}
	for i := range 4 {
		r := validReq(fmt.Sprintf("vc-%d", i+2))
		if i%2 == 0 {
			r.OrderId = "order-2"
		}
		f.clock.Advance(time.Second)
		if _, err := f.client.SendMessage(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	page, err := f.client.ListMessages(ctx, &smsv1.ListMessagesRequest{PageSize: 2})
	if err != nil || len(page.GetMessages()) != 2 || page.GetMessages()[0].GetMessageId() != "vc-5" || page.GetNextPageToken() == "" {
		t.Fatalf("page 1 = %v, %v", page, err)
	}
	page2, err := f.client.ListMessages(ctx, &smsv1.ListMessagesRequest{PageSize: 2, PageToken: page.GetNextPageToken()})
	if err != nil || len(page2.GetMessages()) != 2 || page2.GetMessages()[0].GetMessageId() != "vc-3" {
		t.Fatalf("page 2 = %v, %v", page2, err)
	}
	byOrder, err := f.client.ListMessages(ctx, &smsv1.ListMessagesRequest{OrderId: "order-2"})
	if err != nil || len(byOrder.GetMessages()) != 2 || byOrder.GetNextPageToken() != "" {
		t.Fatalf("by order = %v, %v", byOrder, err)
	}
	if _, err := f.client.ListMessages(ctx, &smsv1.ListMessagesRequest{PageToken: "garbage!"}); status.Code(err) != codes.InvalidArgument ||
		rpc.Field(err) != "page_token" {
		t.Fatalf("bad token: %v", err)
	}
	// A token resumes only the listing it was issued for.
	if _, err := f.client.ListMessages(ctx, &smsv1.ListMessagesRequest{OrderId: "order-2", PageToken: page.GetNextPageToken()}); status.Code(err) != codes.InvalidArgument ||
		rpc.Reason(err) != pagetoken.ReasonInvalidPageToken {
		t.Fatalf("token of another filter: %v", err)
	}
}

func TestInvalidArgumentNamesField(t *testing.T) {
	t.Parallel()
	f := start(t, false)
	tests := []struct {
		field string
		mod   func(*smsv1.SendMessageRequest)
	}{
		{"message_id", func(r *smsv1.SendMessageRequest) { r.MessageId = "" }},
		{"phone", func(r *smsv1.SendMessageRequest) { r.Phone = "123" }},
		{"template", func(r *smsv1.SendMessageRequest) { r.Template = smsv1.Template_TEMPLATE_UNSPECIFIED }},
		{"params.code", func(r *smsv1.SendMessageRequest) { delete(r.Params, "code") }},
		{"params.code", func(r *smsv1.SendMessageRequest) { r.Params["code"] = "12345" }},
		{"params.deadline", func(r *smsv1.SendMessageRequest) { r.Params["deadline"] = "soon" }},
		{"locale", func(r *smsv1.SendMessageRequest) { r.Locale = "fr" }},
		{"expire_time", func(r *smsv1.SendMessageRequest) { r.ExpireTime = nil }},
	}
	for _, tc := range tests {
		t.Run(tc.field, func(t *testing.T) {
			r := validReq("vc-x")
			tc.mod(r)
			_, err := f.client.SendMessage(context.Background(), r)
			if status.Code(err) != codes.InvalidArgument || rpc.Field(err) != tc.field {
				t.Fatalf("err = %v (field %q), want InvalidArgument on %s", err, rpc.Field(err), tc.field)
			}
			if st, _ := status.FromError(err); st != nil && (strings.Contains(st.Message(), "13812345678") || strings.Contains(st.Message(), "123456")) {
				t.Fatalf("error message leaks personal data: %q", st.Message())
			}
		})
	}
	// Nothing was stored by the refused requests.
	if _, err := f.client.GetMessage(context.Background(), &smsv1.GetMessageRequest{MessageId: "vc-x"}); status.Code(err) != codes.NotFound {
		t.Fatalf("refused message stored: %v", err)
	}
	// Ids over their limits in the reads.
	_, err := f.client.GetMessage(context.Background(), &smsv1.GetMessageRequest{MessageId: strings.Repeat("m", domain.MaxMessageIDLength+1)})
	if status.Code(err) != codes.InvalidArgument || rpc.Field(err) != "message_id" {
		t.Fatalf("GetMessage of a long id: %v", err)
	}
	_, err = f.client.ListMessages(context.Background(), &smsv1.ListMessagesRequest{OrderId: strings.Repeat("o", orderid.MaxLength+1)})
	if status.Code(err) != codes.InvalidArgument || rpc.Field(err) != "order_id" {
		t.Fatalf("ListMessages of a long order id: %v", err)
	}
}

func TestGetUnknownIsNotFound(t *testing.T) {
	t.Parallel()
	f := start(t, false)
	_, err := f.client.GetMessage(context.Background(), &smsv1.GetMessageRequest{MessageId: "nope"})
	if status.Code(err) != codes.NotFound || rpc.Reason(err) != domain.ReasonMessageNotFound {
		t.Fatalf("err = %v", err)
	}
	if _, err := f.client.GetMessage(context.Background(), &smsv1.GetMessageRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("empty id: %v", err)
	}
}

// TestDevelopmentShowsText: with the console provider (ShowText, KeepText) the CLI reads the text,
// code included, from GetMessage and ListMessages, before and after sending.
func TestDevelopmentShowsText(t *testing.T) {
	t.Parallel()
	f := start(t, true)
	ctx := context.Background()
	resp, err := f.client.SendMessage(ctx, validReq("vc-dev"))
	if err != nil {
		t.Fatal(err)
	}
	if m := resp.GetMessage(); m.GetBody() != wantBody || m.GetRedacted() {
		t.Fatalf("SendMessage = %v", m)
	}
	if _, err := f.disp.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := f.client.GetMessage(ctx, &smsv1.GetMessageRequest{MessageId: "vc-dev"})
	if m := got.GetMessage(); err != nil || m.GetState() != smsv1.MessageState_MESSAGE_STATE_SENT || m.GetBody() != wantBody || m.GetRedacted() {
		t.Fatalf("GetMessage after send = %v, %v", m, err)
	}
	list, err := f.client.ListMessages(ctx, &smsv1.ListMessagesRequest{OrderId: "order-1"})
	if err != nil || len(list.GetMessages()) != 1 || list.GetMessages()[0].GetBody() != wantBody {
		t.Fatalf("ListMessages = %v, %v", list, err)
	}
}
