package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// TestEveryReasonIsDeclared drives every error a caller can cause through gRPC: each answer's
// reason is the declared ErrorReason value the case names, and every declared value is reached, so
// the contract's list is the service's whole vocabulary.
func TestEveryReasonIsDeclared(t *testing.T) {
	t.Parallel()
	f := start(t, false)
	ctx := context.Background()
	if _, err := f.client.SendMessage(ctx, validReq("vc-1")); err != nil {
		t.Fatal(err)
	}
	send := func(mod func(*smsv1.SendMessageRequest)) func() error {
		return func() error {
			r := validReq("vc-2")
			mod(r)
			_, err := f.client.SendMessage(ctx, r)
			return err
		}
	}
	cases := []struct {
		want smsv1.ErrorReason
		call func() error
	}{
		{smsv1.ErrorReason_ERROR_REASON_MESSAGE_NOT_FOUND, func() error {
			_, err := f.client.GetMessage(ctx, &smsv1.GetMessageRequest{MessageId: "nope"})
			return err
		}},
		{smsv1.ErrorReason_ERROR_REASON_MESSAGE_ID_REUSED, send(func(r *smsv1.SendMessageRequest) { r.MessageId, r.Phone = "vc-1", "13912345678" })},
		{smsv1.ErrorReason_ERROR_REASON_INVALID_MESSAGE_ID, send(func(r *smsv1.SendMessageRequest) { r.MessageId = "" })},
		{smsv1.ErrorReason_ERROR_REASON_INVALID_TEMPLATE, send(func(r *smsv1.SendMessageRequest) { r.Template = smsv1.Template_TEMPLATE_UNSPECIFIED })},
		{smsv1.ErrorReason_ERROR_REASON_MISSING_PARAM, send(func(r *smsv1.SendMessageRequest) { delete(r.Params, "code") })},
		{smsv1.ErrorReason_ERROR_REASON_INVALID_PARAM, send(func(r *smsv1.SendMessageRequest) { r.Params["code"] = "12345" })},
		// 80 characters of link behind the zh-CN text: three segments.
		{smsv1.ErrorReason_ERROR_REASON_MESSAGE_TOO_LONG, send(func(r *smsv1.SendMessageRequest) {
			r.Locale, r.Params["link"] = "zh-CN", "https://"+strings.Repeat("a", 72)
		})},
		{smsv1.ErrorReason_ERROR_REASON_UNSUPPORTED_LOCALE, send(func(r *smsv1.SendMessageRequest) { r.Locale = "fr" })},
		{smsv1.ErrorReason_ERROR_REASON_INVALID_EXPIRE_TIME, send(func(r *smsv1.SendMessageRequest) { r.ExpireTime = nil })},
		{smsv1.ErrorReason_ERROR_REASON_INVALID_PHONE, send(func(r *smsv1.SendMessageRequest) { r.Phone = "123" })},
		{smsv1.ErrorReason_ERROR_REASON_INVALID_ORDER_ID, func() error {
			_, err := f.client.ListMessages(ctx, &smsv1.ListMessagesRequest{OrderId: strings.Repeat("o", orderid.MaxLength+1)})
			return err
		}},
		{smsv1.ErrorReason_ERROR_REASON_INVALID_PAGE_TOKEN, func() error {
			_, err := f.client.ListMessages(ctx, &smsv1.ListMessagesRequest{PageToken: "nope"})
			return err
		}},
		{smsv1.ErrorReason_ERROR_REASON_INVALID_PAGE_SIZE, func() error {
			_, err := f.client.ListMessages(ctx, &smsv1.ListMessagesRequest{PageSize: -1})
			return err
		}},
	}
	reached := map[smsv1.ErrorReason]bool{}
	for _, tc := range cases {
		err := tc.call()
		got := rpc.Reason(err)
		if _, declared := smsv1.ErrorReason_value["ERROR_REASON_"+got]; !declared || got == "" {
			t.Errorf("%s: reason %q of %v is not a declared ErrorReason", tc.want, got, err)
		}
		if !rpc.HasReason(err, tc.want) {
			t.Errorf("%s: got %v", tc.want, err)
		}
		reached[tc.want] = true
	}
	for v, name := range smsv1.ErrorReason_name {
		if r := smsv1.ErrorReason(v); r != smsv1.ErrorReason_ERROR_REASON_UNSPECIFIED && !reached[r] {
			t.Errorf("declared %s is never returned here: drop it from the contract or add its case", name)
		}
	}
}
