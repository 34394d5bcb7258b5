package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/clock"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
	"github.com/icpverify/icpverify/services/filing/internal/grpcapi"
	"github.com/icpverify/icpverify/services/filing/internal/store"
)

// Security review H2, through real gRPC with two API keys (tenants a and b): b gets, for every public
// call on a's order, exactly the answer of an id no order has; a's order is unchanged, absent from b's
// listing, and the same request id from b is b's own request.
func TestSecondTenantCannotTouchTheFirstsOrder(t *testing.T) {
	t.Parallel()
	pool := pgtest.NewSchema(t, "filing_tenants", store.Migrations, outbox.Migrations, idempotency.Migrations)
	st := app.New(store.New(pool, clock.NewFake(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)), nil), app.Config{})
	srv := rpctest.ServeTenants(t, []string{"a", "b"}, func(s *rpc.Server) {
		grpcapi.Register(s.Public(), s.Internal(), st, domain.Rules{})
	})
	pub := filingv1.NewFilingServiceClient(srv.Public)
	a, b := rpctest.As(context.Background(), "a"), rpctest.As(context.Background(), "b")
	created, err := pub.CreateOrder(a, &filingv1.CreateOrderRequest{RequestId: "shared", Spec: validSpec()})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetOrder().GetOrderId()
	if created.GetOrder().GetTenant() != "a" || created.GetOrder().GetHistory()[0].GetActor() != "portal:a (apikey:a)" {
		t.Fatalf("tenant %q, actor %q: want a's", created.GetOrder().GetTenant(), created.GetOrder().GetHistory()[0].GetActor())
	}
	const unknown = "ord_0123456789abcdef0123456789abcdef"
	calls := map[string]func(ctx context.Context, id string) error{
		"GetOrder": func(ctx context.Context, id string) error {
			_, err := pub.GetOrder(ctx, &filingv1.GetOrderRequest{OrderId: id})
			return err
		},
		"UpdateOrder": func(ctx context.Context, id string) error {
			_, err := pub.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{RequestId: "u-" + id, OrderId: id, Spec: validSpec()})
			return err
		},
		"SubmitOrder": func(ctx context.Context, id string) error {
			_, err := pub.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{RequestId: "s-" + id, OrderId: id})
			return err
		},
		"CancelOrder": func(ctx context.Context, id string) error {
			_, err := pub.CancelOrder(ctx, &filingv1.CancelOrderRequest{RequestId: "c-" + id, OrderId: id})
			return err
		},
	}
	for name, call := range calls {
		theirs, none := status.Convert(call(b, id)), status.Convert(call(b, unknown))
		if theirs.Code() != codes.NotFound || !proto.Equal(theirs.Proto(), none.Proto()) {
			t.Errorf("%s of a's order as b: %v, want exactly the unknown id's answer %v", name, theirs.Proto(), none.Proto())
		}
	}
	after, err := pub.GetOrder(a, &filingv1.GetOrderRequest{OrderId: id})
	if err != nil || !proto.Equal(after.GetOrder(), created.GetOrder()) {
		t.Fatalf("a's order after b's calls: %v (%v)", after.GetOrder(), err)
	}
	list, err := pub.ListOrders(b, &filingv1.ListOrdersRequest{})
	if err != nil || len(list.GetOrders()) != 0 {
		t.Fatalf("b lists %d orders (%v), want none", len(list.GetOrders()), err)
	}
	mine, err := pub.CreateOrder(b, &filingv1.CreateOrderRequest{RequestId: "shared", Spec: validSpec()})
	if err != nil || mine.GetOrder().GetOrderId() == id || mine.GetOrder().GetTenant() != "b" {
		t.Fatalf("b's create with a's request id: %v (%v), want b's own new order", mine.GetOrder().GetOrderId(), err)
	}
	if _, err := pub.GetOrder(context.Background(), &filingv1.GetOrderRequest{OrderId: id}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no API key: %v, want Unauthenticated", err)
	}
}
