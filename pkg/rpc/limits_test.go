package rpc

import (
	"context"
	"net"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/config"
)

// serveWithLimits starts NewSecureServer on loopback (two listeners when split) and returns the
// addresses of the public and internal listeners (equal when shared).
func serveWithLimits(t *testing.T, split bool) (public, internal string) {
	t.Helper()
	var sec config.Security
	if split {
		addr := "split"
		sec.InternalGRPCAddr = &addr
	}
	srv, err := NewSecureServer(zap.NewNop(), sec)
	if err != nil {
		t.Fatal(err)
	}
	listen := func() net.Listener {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	pub, intl := listen(), net.Listener(nil)
	public, internal = pub.Addr().String(), pub.Addr().String()
	if split {
		intl = listen()
		internal = intl.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = srv.ServeListeners(ctx, pub, intl, time.Second); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return public, internal
}

func limitsConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	// The client may receive big answers; the server's receive limit is what is tested.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(16<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// checkOfSize sends a health check of the server (SERVING) whose request is size bytes: an unknown
// field, which the server decodes and ignores, carries the padding.
func checkOfSize(t *testing.T, conn *grpc.ClientConn, size int) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req := &healthpb.HealthCheckRequest{}
	pad := size - protowire.SizeTag(99) - protowire.SizeVarint(uint64(size)) // tag, length, bytes
	if protowire.SizeTag(99)+protowire.SizeVarint(uint64(pad))+pad < size {
		pad++ // the length took one byte less than size's
	}
	req.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, 99, protowire.BytesType), make([]byte, pad)))
	if got := proto.Size(req); got != size {
		t.Fatalf("request of %d bytes, want %d", got, size)
	}
	_, err := healthpb.NewHealthClient(conn).Check(ctx, req)
	return err
}

// TestOversizeRequestIsResourceExhausted: over a real connection, a request over the public
// listener's receive limit is ResourceExhausted (never Internal) on a shared listener and on a
// separate public one, while the separate internal listener takes it up to its own limit.
func TestOversizeRequestIsResourceExhausted(t *testing.T) {
	t.Parallel()
	for _, split := range []bool{false, true} {
		public, internal := serveWithLimits(t, split)
		pub := limitsConn(t, public)
		// At the limit the request is served.
		if err := checkOfSize(t, pub, PublicMaxRecvMsgSize); err != nil {
			t.Fatalf("split=%v: request under the public limit: %v, want it served", split, err)
		}
		err := checkOfSize(t, pub, PublicMaxRecvMsgSize+1)
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("split=%v: request over the public limit: %v, want ResourceExhausted", split, err)
		}
		if !split {
			continue
		}
		intl := limitsConn(t, internal)
		if err := checkOfSize(t, intl, 1<<20); err != nil {
			t.Fatalf("1 MiB request on the internal listener: %v, want it served", err)
		}
		if err := checkOfSize(t, intl, InternalMaxRecvMsgSize+1); status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("request over the internal limit: %v, want ResourceExhausted", err)
		}
	}
}

// TestConcurrentStreamsBounded: with MaxConcurrentStreams RPCs open on a connection, one more waits
// (the client queues it) until one of them ends.
func TestConcurrentStreamsBounded(t *testing.T) {
	t.Parallel()
	public, _ := serveWithLimits(t, false)
	conn := limitsConn(t, public)
	client := healthpb.NewHealthClient(conn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancels := make([]context.CancelFunc, MaxConcurrentStreams)
	for i := range cancels {
		sctx, scancel := context.WithCancel(ctx)
		cancels[i] = scancel
		w, err := client.Watch(sctx, &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("watch %d: %v", i, err)
		}
		if _, err := w.Recv(); err != nil { // the stream is open on the server
			t.Fatalf("watch %d: %v", i, err)
		}
	}
	short, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	if _, err := client.Check(short, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("RPC beyond %d open streams: %v, want it to wait (DeadlineExceeded)", MaxConcurrentStreams, err)
	}
	cancels[0]()
	long, lcancel := context.WithTimeout(ctx, 5*time.Second)
	defer lcancel()
	if _, err := client.Check(long, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("RPC after a stream ended: %v", err)
	}
}
