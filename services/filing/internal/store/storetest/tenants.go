package storetest

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// The portals of the suites: two tenants, and the authority's portal that sees both.
var (
	PortalA   = domain.Actor{ID: "apikey:portal-a", Tenant: "portal-a"}
	PortalB   = domain.Actor{ID: "apikey:portal-b", Tenant: "portal-b"}
	Authority = domain.Actor{ID: "apikey:authority", Tenant: "authority", CrossTenant: true}
)

// testOtherTenantsOrderIsUnknown: every public use case answers another tenant's order id exactly as
// an id no order has, changes nothing, and the owner and the authority still see it.
func testOtherTenantsOrderIsUnknown(t *testing.T, e *env) {
	ctx := context.Background()
	id := e.create(t, firstFiling())
	before, err := e.Store.GetOrder(ctx, PortalA, id)
	if err != nil {
		t.Fatal(err)
	}
	spec := mustNormalize(t, firstFiling())
	calls := map[string]func(id string) error{
		"GetOrder": func(id string) error { _, err := e.Store.GetOrder(ctx, PortalB, id); return err },
		"UpdateOrder": func(id string) error {
			_, err := e.Store.UpdateOrder(ctx, PortalB, &filingv1.UpdateOrderRequest{RequestId: "u-" + id, OrderId: id}, spec)
			return err
		},
		"SubmitOrder": func(id string) error {
			_, err := e.Store.SubmitOrder(ctx, PortalB, &filingv1.SubmitOrderRequest{RequestId: "s-" + id, OrderId: id})
			return err
		},
		"CancelOrder": func(id string) error {
			_, err := e.Store.CancelOrder(ctx, PortalB, &filingv1.CancelOrderRequest{RequestId: "c-" + id, OrderId: id})
			return err
		},
	}
	for name, call := range calls {
		theirs, unknown := call(id), call("ord_0123456789abcdef0123456789abcdef")
		if errs.Reason(theirs) != domain.ReasonOrderNotFound || theirs.Error() != unknown.Error() {
			t.Errorf("%s of another tenant's order: %v, want exactly the unknown id's %v", name, theirs, unknown)
		}
	}
	after, err := e.Store.GetOrder(ctx, PortalA, id)
	if err != nil || !proto.Equal(before, after) {
		t.Fatalf("the owner's order changed: %v", err)
	}
	if _, err := e.Store.GetOrder(ctx, Authority, id); err != nil {
		t.Fatalf("the cross-tenant authority cannot read it: %v", err)
	}
	if after.GetTenant() != PortalA.Tenant || after.GetHistory()[0].GetActor() != PortalA.HistoryName() {
		t.Fatalf("tenant %q, first actor %q: want the creating portal", after.GetTenant(), after.GetHistory()[0].GetActor())
	}
}

// testListOrdersPerTenant: a tenant lists only its orders; the authority lists everybody's.
func testListOrdersPerTenant(t *testing.T, e *env) {
	ctx := context.Background()
	mine := e.create(t, firstFiling())
	resp, err := e.Store.CreateOrder(ctx, PortalB, &filingv1.CreateOrderRequest{RequestId: "b-1"}, mustNormalize(t, firstFiling()))
	if err != nil {
		t.Fatal(err)
	}
	theirs := resp.GetOrder().GetOrderId()
	ids := func(a domain.Actor) map[string]bool {
		page, _, err := e.Store.ListOrders(ctx, a, domain.StateUnspecified, 50, "")
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, o := range page {
			out[o.GetOrderId()] = true
		}
		return out
	}
	if a := ids(PortalA); !a[mine] || a[theirs] {
		t.Errorf("portal A lists %v: want its own order only", a)
	}
	if b := ids(PortalB); b[mine] || !b[theirs] {
		t.Errorf("portal B lists %v: want its own order only", b)
	}
	if all := ids(Authority); !all[mine] || !all[theirs] {
		t.Errorf("the authority lists %v: want both", all)
	}
}

// testRequestIDsPerTenant: the same request id from two tenants is two requests: B's create makes B's
// own order instead of replaying A's answer (which would hand B A's order).
func testRequestIDsPerTenant(t *testing.T, e *env) {
	ctx := context.Background()
	spec := mustNormalize(t, firstFiling())
	a, err := e.Store.CreateOrder(ctx, PortalA, &filingv1.CreateOrderRequest{RequestId: "shared-id"}, spec)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Store.CreateOrder(ctx, PortalB, &filingv1.CreateOrderRequest{RequestId: "shared-id"}, spec)
	if err != nil {
		t.Fatal(err)
	}
	if a.GetOrder().GetOrderId() == b.GetOrder().GetOrderId() || b.GetOrder().GetTenant() != PortalB.Tenant {
		t.Fatalf("B's create with A's request id answered %s of tenant %q", b.GetOrder().GetOrderId(), b.GetOrder().GetTenant())
	}
}
