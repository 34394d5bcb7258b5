package rpc_test

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
)

// remotes is a health server that records the client address of each call: one per connection.
type remotes struct {
	grpc_health_v1.UnimplementedHealthServer
	mu   sync.Mutex
	seen map[string]int
}

func (r *remotes) Check(ctx context.Context, _ *grpc_health_v1.HealthCheckRequest) (*grpc_health_v1.HealthCheckResponse, error) {
	p, _ := peer.FromContext(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[p.Addr.String()]++
	return &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
}

// A pool's calls go over its n connections in turn, each carrying an equal share.
func TestPoolSpreadsCallsOverItsConnections(t *testing.T) {
	srv := &remotes{seen: map[string]int{}}
	addr := rpctest.Peer(t, func(s grpc.ServiceRegistrar) { grpc_health_v1.RegisterHealthServer(s, srv) })
	pool, err := (&rpc.Dialer{}).DialPool(addr, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	hc := grpc_health_v1.NewHealthClient(pool)
	for range 9 {
		if _, err := hc.Check(t.Context(), &grpc_health_v1.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if len(srv.seen) != 3 {
		t.Fatalf("calls came over %d connections (%v), want 3", len(srv.seen), srv.seen)
	}
	for a, n := range srv.seen {
		if n != 3 {
			t.Errorf("connection %s carried %d calls, want 3", a, n)
		}
	}
	if err := pool.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}
