package storetest

import (
	"context"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

func testRequestIDReusedWithAnotherRequest(t *testing.T, e *env) {
	ctx := context.Background()
	first, err := e.Store.CreateOrder(ctx, PortalA, &filingv1.CreateOrderRequest{RequestId: "same"}, mustNormalize(t, firstFiling()))
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	again, err := e.Store.CreateOrder(ctx, PortalA, &filingv1.CreateOrderRequest{RequestId: "same"}, mustNormalize(t, firstFiling()))
	if err != nil || !proto.Equal(first, again) {
		t.Fatalf("retry: %v, equal=%v", err, proto.Equal(first, again))
	}
	_, err = e.Store.CreateOrder(ctx, PortalA, &filingv1.CreateOrderRequest{RequestId: "same", Spec: &filingv1.OrderSpec{SubjectName: "x"}},
		mustNormalize(t, firstFiling()))
	wantReason(t, err, errs.RequestIDReused.Reason)
	// A refused request stores nothing: the same request_id with a valid request then succeeds.
	id := first.GetOrder().GetOrderId()
	e.submit(t, id)
	_, err = e.Store.UpdateOrder(ctx, PortalA, &filingv1.UpdateOrderRequest{RequestId: "u", OrderId: id}, mustNormalize(t, firstFiling()))
	wantReason(t, err, domain.ReasonInvalidStateTransition)
	other := e.create(t, firstFiling())
	if _, err := e.Store.UpdateOrder(ctx, PortalA, &filingv1.UpdateOrderRequest{RequestId: "u", OrderId: id}, mustNormalize(t, firstFiling())); err == nil {
		t.Fatal("update of a submitted order succeeded on retry")
	}
	if _, err := e.Store.UpdateOrder(ctx, PortalA, &filingv1.UpdateOrderRequest{RequestId: "u2", OrderId: other}, mustNormalize(t, firstFiling())); err != nil {
		t.Fatal(err)
	}
}
