// Package rpctest serves gRPC services on loopback ports for tests and stops them when the test
// ends: Serve runs the real server stack of pkg/rpc (edge interceptor, error mapping, health) and
// returns a client connection to it; Peer runs a bare grpc.Server for fake peers that a service under
// test dials; FreeAddr and Dial are for tests that start a whole service through its Run.
package rpctest

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/icpverify/icpverify/pkg/rpc"
)

// ShutdownTimeout is how long a server of Serve lets in-flight RPCs finish when the test ends.
const ShutdownTimeout = time.Second

// Serve builds an rpc.NewServer (no security, a no-op logger), lets register add its services (to
// s.GRPC, s.Public() or s.Internal()), serves it on 127.0.0.1:0 and returns a plaintext client
// connection to it. When the test ends the connection is closed, then the server shut down and
// waited for.
func Serve(t testing.TB, register func(s *rpc.Server)) *grpc.ClientConn {
	t.Helper()
	srv := rpc.NewServer(zap.NewNop())
	register(srv)
	lis := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.ServeListener(ctx, lis, ShutdownTimeout); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return Dial(t, lis.Addr().String())
}

// Peer serves a bare grpc.Server (no interceptors, so a fake's errors such as Unimplemented reach
// the caller as they are) with the services register adds on 127.0.0.1:0 and returns its address.
// When the test ends the server is stopped hard and waited for.
func Peer(t testing.TB, register func(s grpc.ServiceRegistrar)) string {
	t.Helper()
	srv := grpc.NewServer()
	register(srv)
	lis := listen(t)
	done := make(chan struct{})
	go func() { _ = srv.Serve(lis); close(done) }()
	t.Cleanup(func() { srv.Stop(); <-done })
	return lis.Addr().String()
}

// Dial returns a plaintext client connection to addr (see rpc.Dial), closed when the test ends.
func Dial(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := rpc.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// FreeAddr returns a loopback address nothing listens on right now, for a server the test starts
// itself (a service's Run, an admin listener).
func FreeAddr(t testing.TB) string {
	t.Helper()
	lis := listen(t)
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return lis
}
