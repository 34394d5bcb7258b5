package storetest

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

func testCancelAwaitingEnqueuesCancels(t *testing.T, e *env) {
	ctx := context.Background()
	id := e.create(t, firstFiling())
	e.submit(t, id)
	resp, err := e.Store.CancelOrder(ctx, PortalA, &filingv1.CancelOrderRequest{RequestId: "c", OrderId: id, Reason: "changed my mind"})
	if err != nil || resp.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_CANCELLED {
		t.Fatalf("cancel: %v %v", resp, err)
	}
	rows := e.outbox(t)
	if len(rows) != 4 || rows[2].target != convert.TargetCancelSession || rows[3].target != convert.TargetCancelDeadline {
		t.Fatalf("outbox = %v", rows)
	}
	var cs verificationv1.CancelSessionRequest
	if err := proto.Unmarshal(rows[2].payload, &cs); err != nil || cs.GetRequestId() != fmt.Sprintf("filing:cancel-session:%s:1", id) {
		t.Fatalf("cancel session = %v %v", &cs, err)
	}
	_, err = e.Store.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "late", OrderId: id, Submission: 1})
	wantReason(t, err, domain.ReasonInvalidStateTransition)
	// A draft cancels without calls to other services.
	draft := e.create(t, firstFiling())
	if _, err := e.Store.CancelOrder(ctx, PortalA, &filingv1.CancelOrderRequest{OrderId: draft}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.outbox(t)); n != 4 {
		t.Fatalf("outbox rows %d, want 4", n)
	}
}
