package grpcapi

import (
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// Rate is one public method's token bucket per tenant: calls per second on average (0: no limit)
// and at once.
type Rate struct {
	PerSecond float64
	Burst     int
}

// RateLimits are the edge's limits on the public mutations, keyed by the caller's tenant (security
// review M4, L5): every API key and JWT subject of a tenant shares its buckets.
func RateLimits(create, update, submit Rate) []rpc.ServerOption {
	limit := func(method string, r Rate) rpc.ServerOption {
		return rpc.RateLimit{Method: method, Rate: r.PerSecond, Burst: r.Burst, PerTenant: true}
	}
	return []rpc.ServerOption{
		limit(filingv1.FilingService_CreateOrder_FullMethodName, create),
		limit(filingv1.FilingService_UpdateOrder_FullMethodName, update),
		limit(filingv1.FilingService_SubmitOrder_FullMethodName, submit),
	}
}
