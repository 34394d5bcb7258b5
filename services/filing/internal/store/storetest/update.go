package storetest

import (
	"context"
	"testing"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

func testUpdateOnlyInDraftOrReturned(t *testing.T, e *env) {
	id := e.create(t, firstFiling())
	e.submit(t, id)
	_, err := e.Store.UpdateOrder(context.Background(), PortalA, &filingv1.UpdateOrderRequest{OrderId: id}, mustNormalize(t, firstFiling()))
	wantReason(t, err, domain.ReasonInvalidStateTransition)
	_, err = e.Store.GetOrder(context.Background(), PortalA, "ord_missing")
	wantReason(t, err, domain.ReasonOrderNotFound)
}
