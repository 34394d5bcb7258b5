package grpcapi_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// The batch methods answer each item as the single call would, with the code and the ErrorInfo
// reason of its error, and apply the good items beside the bad ones; a batch over the bound is
// refused as a whole.
func TestBatchItemsCarryTheirErrors(t *testing.T) {
	t.Parallel()
	c := start(t)
	ctx := context.Background()
	var ids []string
	for _, r := range []string{"c1", "c2"} {
		created, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: r, Spec: validSpec()})
		if err != nil {
			t.Fatal(err)
		}
		id := created.GetOrder().GetOrderId()
		if _, err := c.pub.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{RequestId: "s" + r, OrderId: id}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	mark, err := c.in.MarkVerifiedBatch(ctx, &filingv1.MarkVerifiedBatchRequest{Requests: []*filingv1.MarkVerifiedRequest{
		{RequestId: "m1", OrderId: ids[0], Submission: 1},
		{RequestId: "m2", OrderId: strings.Repeat("o", orderid.MaxLength+1), Submission: 1},
		{RequestId: "m3", OrderId: "ord_unknown", Submission: 1},
		{RequestId: "m4", OrderId: ids[1], Submission: 0},
	}})
	if err != nil || len(mark.GetResults()) != 4 {
		t.Fatalf("MarkVerifiedBatch: %v, %v", mark, err)
	}
	r := mark.GetResults()
	if r[0].GetError() != nil || r[0].GetResponse().GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_UNDER_REVIEW {
		t.Errorf("the good item: %v", r[0])
	}
	for i, want := range []struct {
		code   codes.Code
		reason string
	}{{codes.InvalidArgument, orderid.ReasonInvalid}, {codes.NotFound, domain.ReasonOrderNotFound},
		{codes.InvalidArgument, orderid.ReasonInvalidSubmission}} {
		item := r[i+1]
		err := rpc.ItemErr(item.GetError())
		if item.GetResponse() != nil || status.Code(err) != want.code || rpc.Reason(err) != want.reason || status.Convert(err).Message() == "" {
			t.Errorf("item %d: %v (reason %q), want %s %s", i+1, err, rpc.Reason(err), want.code, want.reason)
		}
	}
	ret, err := c.in.ReturnOrderBatch(ctx, &filingv1.ReturnOrderBatchRequest{Requests: []*filingv1.ReturnOrderRequest{
		{RequestId: "r1", OrderId: ids[1], Submission: 1},
		{RequestId: "r2", OrderId: ids[1], Submission: 1, Reason: filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT},
		{RequestId: "r3", OrderId: ids[0], Submission: 1, Reason: filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT},
	}})
	if err != nil || len(ret.GetResults()) != 3 {
		t.Fatalf("ReturnOrderBatch: %v, %v", ret, err)
	}
	rr := ret.GetResults()
	if err := rpc.ItemErr(rr[0].GetError()); rpc.Reason(err) != domain.ReasonInvalidReturnReason || status.Code(err) != codes.InvalidArgument {
		t.Errorf("no reason: %v", err)
	}
	if rr[1].GetError() != nil || rr[1].GetResponse().GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_RETURNED {
		t.Errorf("the good return: %v", rr[1])
	}
	if err := rpc.ItemErr(rr[2].GetError()); status.Code(err) != codes.FailedPrecondition || rpc.Reason(err) != domain.ReasonInvalidStateTransition {
		t.Errorf("returning a verified order: %v", err)
	}
	_, err = c.in.ReturnOrderBatch(ctx, &filingv1.ReturnOrderBatchRequest{Requests: make([]*filingv1.ReturnOrderRequest, errs.MaxBatchItems+1)})
	if status.Code(err) != codes.InvalidArgument || rpc.Reason(err) != errs.ReasonTooManyItems {
		t.Errorf("an oversized batch: %v", err)
	}
}
