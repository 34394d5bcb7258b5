package rpc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
)

// Server is a gRPC server plus the background loops (outbox relays, dispatchers, sweepers) of one
// service; they start and stop together.
type Server struct {
	GRPC   *grpc.Server
	Health *health.Server
	log    *zap.Logger
	loops  []namedLoop
}

type namedLoop struct {
	name string
	run  func(context.Context) error
}

// NewServer returns a server with recovery, request logging and error mapping on every unary RPC,
// the grpc.health.v1 service and server reflection.
func NewServer(log *zap.Logger, opts ...grpc.ServerOption) *Server {
	opts = append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(unaryInterceptor(log))}, opts...)
	s := &Server{GRPC: grpc.NewServer(opts...), Health: health.NewServer(), log: log}
	healthpb.RegisterHealthServer(s.GRPC, s.Health)
	reflection.Register(s.GRPC)
	return s
}

// Go adds a background loop that runs while the server serves; it must return when ctx ends.
func (s *Server) Go(name string, run func(context.Context) error) {
	s.loops = append(s.loops, namedLoop{name: name, run: run})
}

// Serve listens on addr and serves until ctx ends (SIGTERM in main). Then it reports NOT_SERVING,
// lets in-flight RPCs finish for up to shutdownTimeout, stops hard, and stops the background loops.
func (s *Server) Serve(ctx context.Context, addr string, shutdownTimeout time.Duration) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	return s.ServeListener(ctx, lis, shutdownTimeout)
}

// ServeListener is Serve on an open listener.
func (s *Server) ServeListener(ctx context.Context, lis net.Listener, shutdownTimeout time.Duration) error {
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range s.GRPC.GetServiceInfo() {
		s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	loopCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	for _, l := range s.loops {
		wg.Go(func() {
			if err := l.run(loopCtx); err != nil && !errors.Is(err, context.Canceled) {
				s.log.Error("background loop stopped", zap.String("loop", l.name), zap.Error(err))
			}
		})
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.GRPC.Serve(lis) }()
	s.log.Info("listening", zap.String("addr", lis.Addr().String()))

	var err error
	select {
	case err = <-serveErr:
	case <-ctx.Done():
		s.log.Info("shutting down", zap.Duration("grace", shutdownTimeout))
		s.Health.Shutdown()
		done := make(chan struct{})
		go func() { s.GRPC.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(shutdownTimeout):
			s.log.Warn("grace period over, stopping hard")
			s.GRPC.Stop()
		}
	}
	stopLoops()
	wg.Wait()
	s.log.Info("stopped")
	return err
}

type requestIDGetter interface{ GetRequestId() string }
type orderIDGetter interface{ GetOrderId() string }

// unaryInterceptor recovers panics, maps errors to statuses and logs one line per RPC with ids only.
func unaryInterceptor(log *zap.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in handler", zap.String("method", info.FullMethod), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
			fields := []zap.Field{zap.String("method", info.FullMethod), zap.String("grpc_code", status.Code(err).String()),
				zap.Duration("duration", time.Since(start))}
			if g, ok := req.(requestIDGetter); ok && g.GetRequestId() != "" {
				fields = append(fields, zap.String("request_id", g.GetRequestId()))
			}
			if g, ok := req.(orderIDGetter); ok && g.GetOrderId() != "" {
				fields = append(fields, zap.String("order_id", g.GetOrderId()))
			}
			if r := Reason(err); r != "" {
				fields = append(fields, zap.String("reason", r))
			}
			switch status.Code(err) {
			case codes.Internal, codes.Unknown, codes.DataLoss:
				log.Error("rpc", fields...)
			default:
				log.Info("rpc", fields...)
			}
		}()
		resp, err = handler(ctx, req)
		return resp, ToStatus(log, info.FullMethod, err)
	}
}
