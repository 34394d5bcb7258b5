package rpctest_test

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
)

func check(t *testing.T, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true))
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health check: %v %v", resp, err)
	}
}

func TestServe(t *testing.T) {
	registered := false
	conn := rpctest.Serve(t, func(s *rpc.Server) { registered = s != nil && s.GRPC != nil })
	if !registered {
		t.Fatal("register was not called with the server")
	}
	check(t, conn)
}

func TestPeer(t *testing.T) {
	addr := rpctest.Peer(t, func(s grpc.ServiceRegistrar) { healthpb.RegisterHealthServer(s, health.NewServer()) })
	check(t, rpctest.Dial(t, addr))
}

func TestFreeAddr(t *testing.T) {
	addr := rpctest.FreeAddr(t)
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("FreeAddr %s is not free: %v", addr, err)
	}
	lis.Close()
}
