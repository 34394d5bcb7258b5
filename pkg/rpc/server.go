package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/observe"
)

// Server is the gRPC edge of one service plus its background loops (outbox relays, dispatchers,
// sweepers); they start and stop together.
//
// Services are registered as public (Public: portal backends call them) or internal (Internal:
// other services and operators). With a separate internal address the two kinds are served by two
// gRPC servers on two listeners, so neither listener even knows the other's services; without one,
// both kinds share one listener. Either way every RPC passes the edge: public RPCs need the portal
// credential (unless --portal-auth=none), internal RPCs the internal credential (client certificate
// and/or token, when configured), health and reflection are open. Then the per-caller rate limits.
type Server struct {
	// GRPC is the server on the public (or only) listener.
	GRPC *grpc.Server
	// Health is the grpc.health.v1 service, served on both listeners.
	Health *health.Server

	internal     *grpc.Server // == GRPC unless the listeners are split
	internalAddr string
	log          *zap.Logger
	loops        []namedLoop
	kinds        map[string]serviceKind
	callers      map[string]map[string]bool // internal full method -> the roles its callers option admits
	portal       authenticator
	intern       authenticator
	limits       map[string]*limiter
	obs          *observe.Observer // nil: no metrics, no tracing, no admin listener
}

// ServerOption configures NewSecureServer: a RateLimit, or WithObserver.
type ServerOption interface{ serverOption() }

func (RateLimit) serverOption() {}

type withObserver struct{ o *observe.Observer }

func (withObserver) serverOption() {}

// WithObserver gives the server its observability: grpc_server_* metrics on every RPC of both
// listeners, a span per RPC when tracing is on, the admin listener (--admin-addr) while serving.
func WithObserver(o *observe.Observer) ServerOption { return withObserver{o} }

type namedLoop struct {
	name string
	run  func(context.Context) error
}

type serviceKind int

const (
	kindInternal serviceKind = iota // the default: an unregistered kind gets the strictest check
	kindPublic
	kindOpen
)

// NewServer returns a server without security (one plaintext listener, no credentials, no rate
// limits) with recovery, request logging and error mapping on every RPC, the grpc.health.v1 service
// and server reflection. Services use NewSecureServer; this is for tests and tools.
func NewServer(log *zap.Logger, opts ...grpc.ServerOption) *Server {
	s := &Server{log: log, portal: anonymous{}, intern: internalAuth{}}
	s.build(nil, nil, false, opts...)
	return s
}

// NewSecureServer returns a server configured by the security flags (see config.RegisterSecurity),
// with the given per-caller rate limits and observer. Without security flags it behaves like NewServer.
func NewSecureServer(log *zap.Logger, sec config.Security, opts ...ServerOption) (*Server, error) {
	if err := sec.Check(); err != nil {
		return nil, err
	}
	split := config.Get(sec.InternalGRPCAddr) != ""
	if sec.PortalAuthEnabled() && !split && !sec.InternalCredential() {
		return nil, errors.New("--portal-auth is on, but the internal RPCs share --grpc-addr without a credential, so a portal " +
			"caller could call them: set --internal-grpc-addr, --tls-client-ca-file or --internal-callers-file")
	}
	s := &Server{log: log, internalAddr: config.Get(sec.InternalGRPCAddr), limits: map[string]*limiter{}}
	var err error
	jc := JWTConfig{KeyFile: config.Get(sec.JWTKeyFile), Issuer: config.Get(sec.JWTIssuer), Audience: config.Get(sec.JWTAudience),
		TenantClaim: config.Get(sec.JWTTenantClaim), CrossTenantClaim: config.Get(sec.JWTCrossTenantClaim)}
	if sec.JWTMaxLifetime != nil {
		jc.MaxLifetime = *sec.JWTMaxLifetime
	}
	if s.portal, err = newPortalAuth(log, config.Get(sec.PortalAuth), config.Get(sec.APIKeysFile), jc); err != nil {
		return nil, err
	}
	ia := internalAuth{requireCert: config.Get(sec.TLSClientCAFile) != ""}
	if path := config.Get(sec.InternalCallersFile); path != "" {
		if ia.callers, err = newReloading(log, "internal callers", readFile(parseInternalCallers, path), path); err != nil {
			return nil, fmt.Errorf("--internal-callers-file %s: %w", path, err)
		}
	}
	s.intern = ia
	var limits []RateLimit
	for _, o := range opts {
		switch o := o.(type) {
		case RateLimit:
			limits = append(limits, o)
		case withObserver:
			s.obs = o.o
		}
	}
	for _, l := range limits {
		if l.Rate < 0 || l.Burst < 0 {
			return nil, fmt.Errorf("rate limit of %s: rate and burst must not be negative", l.Method)
		}
		if l.Rate > 0 {
			s.limits[l.Method] = newLimiter(l)
		}
	}
	var pubCreds, intCreds credentials.TransportCredentials
	if cert := config.Get(sec.TLSCertFile); cert != "" {
		files, err := newTLSFiles(log, "server TLS", cert, config.Get(sec.TLSKeyFile), config.Get(sec.TLSClientCAFile))
		if err != nil {
			return nil, err
		}
		// On a shared listener a client certificate is verified when given, and the edge requires one
		// for internal RPCs only; a separate internal listener refuses the handshake without one.
		pubAuth := tls.VerifyClientCertIfGiven
		if split {
			pubAuth = tls.NoClientCert
		}
		pubCreds = &reloadingCreds{files: files, server: true, clientAuth: pubAuth}
		intCreds = &reloadingCreds{files: files, server: true, clientAuth: tls.RequireAndVerifyClientCert}
	}
	s.build(pubCreds, intCreds, split)
	log.Info("security edge", zap.Bool("split_listeners", split), zap.Bool("tls", pubCreds != nil),
		zap.Bool("mutual_tls_internal", ia.requireCert), zap.Bool("internal_callers", ia.callers != nil),
		zap.String("portal_auth", config.Get(sec.PortalAuth)), zap.Int("rate_limited_methods", len(s.limits)))
	return s, nil
}

// streamWorkers is the number of goroutines kept to serve RPCs (grpc.NumStreamWorkers).
const streamWorkers = 32

func (s *Server) build(pubCreds, intCreds credentials.TransportCredentials, split bool, opts ...grpc.ServerOption) {
	s.Health = health.NewServer()
	s.kinds = map[string]serviceKind{healthpb.Health_ServiceDesc.ServiceName: kindOpen}
	s.callers = map[string]map[string]bool{}
	newGRPC := func(creds credentials.TransportCredentials, maxRecv int) *grpc.Server {
		unary := []grpc.UnaryServerInterceptor{s.unaryInterceptor()}
		stream := []grpc.StreamServerInterceptor{s.streamInterceptor()}
		var o []grpc.ServerOption
		if s.obs != nil {
			// Outermost, so the metrics see the status the edge maps every error (and panic) to.
			unary = append([]grpc.UnaryServerInterceptor{s.obs.GRPC.UnaryServerInterceptor()}, unary...)
			stream = append([]grpc.StreamServerInterceptor{s.obs.GRPC.StreamServerInterceptor()}, stream...)
			if h := s.obs.ServerHandler(); h != nil {
				o = append(o, grpc.StatsHandler(h))
			}
		}
		// Stream workers are goroutines that serve one RPC after another: a handler's stack, grown once
		// (pgx, protobuf), is reused instead of grown again by every RPC's new goroutine (7% of
		// verification's CPU under load). Past streamWorkers concurrent RPCs, gRPC starts goroutines.
		o = append(o, grpc.ChainUnaryInterceptor(unary...), grpc.ChainStreamInterceptor(stream...),
			grpc.NumStreamWorkers(streamWorkers))
		o = append(o, transportLimits(maxRecv)...)
		if creds != nil {
			o = append(o, grpc.Creds(creds))
		}
		g := grpc.NewServer(append(o, opts...)...)
		healthpb.RegisterHealthServer(g, s.Health)
		reflection.Register(g)
		return g
	}
	s.GRPC = newGRPC(pubCreds, PublicMaxRecvMsgSize)
	s.internal = s.GRPC
	if split {
		s.internal = newGRPC(intCreds, InternalMaxRecvMsgSize)
	}
}

type registrar struct {
	s    *Server
	kind serviceKind
	to   *grpc.Server
}

// RegisterService records the kind of the service and, for an internal one, the callers option of
// each method, read once here rather than on every RPC. An internal method without it panics.
func (r registrar) RegisterService(desc *grpc.ServiceDesc, impl any) {
	r.s.kinds[desc.ServiceName] = r.kind
	if r.kind == kindInternal {
		for m, roles := range methodCallers(desc) {
			r.s.callers[m] = roles
		}
	}
	r.to.RegisterService(desc, impl)
}

// Public registers public services (portal backends); call it before serving.
func (s *Server) Public() grpc.ServiceRegistrar { return registrar{s: s, kind: kindPublic, to: s.GRPC} }

// Internal registers internal services (other services, operators); call it before serving.
func (s *Server) Internal() grpc.ServiceRegistrar {
	return registrar{s: s, kind: kindInternal, to: s.internal}
}

// Go adds a background loop that runs while the server serves; it must return when ctx ends.
func (s *Server) Go(name string, run func(context.Context) error) {
	s.loops = append(s.loops, namedLoop{name: name, run: run})
}

// Serve listens on addr (and on the internal address, when the listeners are split) and serves until
// ctx ends (SIGTERM in main). Then it reports NOT_SERVING, lets in-flight RPCs finish for up to
// shutdownTimeout, stops hard, and stops the background loops.
func (s *Server) Serve(ctx context.Context, addr string, shutdownTimeout time.Duration) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	var internal net.Listener
	if s.internal != s.GRPC {
		if internal, err = net.Listen("tcp", s.internalAddr); err != nil {
			lis.Close()
			return fmt.Errorf("listen on %s: %w", s.internalAddr, err)
		}
	}
	return s.ServeListeners(ctx, lis, internal, shutdownTimeout)
}

// Stop stops the gRPC servers hard. Serve stops them itself; Stop is for a server that will never
// serve (its service failed to start): a grpc.Server keeps its stream workers running from
// construction until it is stopped. Stopping a stopped server does nothing.
func (s *Server) Stop() {
	s.GRPC.Stop()
	s.internal.Stop()
}

// ServeListener is Serve on an open listener (servers without split listeners).
func (s *Server) ServeListener(ctx context.Context, lis net.Listener, shutdownTimeout time.Duration) error {
	return s.ServeListeners(ctx, lis, nil, shutdownTimeout)
}

// ServeListeners is Serve on open listeners; internal is needed exactly when the listeners are split.
func (s *Server) ServeListeners(ctx context.Context, public, internal net.Listener, shutdownTimeout time.Duration) error {
	servers := []*grpc.Server{s.GRPC}
	listeners := []net.Listener{public}
	if s.internal != s.GRPC {
		if internal == nil {
			public.Close()
			return errors.New("the internal services need their own listener (--internal-grpc-addr)")
		}
		servers, listeners = append(servers, s.internal), append(listeners, internal)
	} else if internal != nil {
		internal.Close()
	}
	stopAdmin := func() {}
	if s.obs != nil {
		var err error
		if stopAdmin, err = s.obs.StartAdmin(); err != nil {
			for _, l := range listeners {
				l.Close()
			}
			return err
		}
		for _, g := range servers {
			s.obs.GRPC.InitializeMetrics(g)
		}
	}
	s.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, g := range servers {
		for name := range g.GetServiceInfo() {
			s.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
		}
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
	serveErr := make(chan error, len(servers))
	for i, g := range servers {
		go func() { serveErr <- g.Serve(listeners[i]) }()
	}
	fields := []zap.Field{zap.String("addr", public.Addr().String())}
	if internal != nil && len(servers) > 1 {
		fields = append(fields, zap.String("internal_addr", internal.Addr().String()))
	}
	s.log.Info("listening", fields...)
	if s.obs != nil {
		s.obs.SetServing(true)
	}

	var err error
	select {
	case err = <-serveErr:
		if s.obs != nil {
			s.obs.SetServing(false)
		}
		for _, g := range servers { // one listener failed: the service is down, stop the other too
			g.Stop()
		}
	case <-ctx.Done():
		s.log.Info("shutting down", zap.Duration("grace", shutdownTimeout))
		if s.obs != nil {
			s.obs.SetServing(false) // /readyz answers 503 from now on, while the in-flight RPCs finish
		}
		s.Health.Shutdown()
		done := make(chan struct{})
		go func() {
			var stopWG sync.WaitGroup
			for _, g := range servers {
				stopWG.Go(g.GracefulStop)
			}
			stopWG.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(shutdownTimeout):
			s.log.Warn("grace period over, stopping hard")
			for _, g := range servers {
				g.Stop()
			}
		}
	}
	stopLoops()
	wg.Wait()
	if s.obs != nil {
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if ferr := s.obs.Shutdown(flushCtx); ferr != nil {
			s.log.Warn("could not flush the last spans", zap.Error(ferr))
		}
		cancel()
	}
	stopAdmin()
	s.log.Info("stopped")
	return err
}

// serviceOf returns the service of a full method name: /pkg.Service/Method -> pkg.Service.
func serviceOf(fullMethod string) string {
	svc, _, _ := strings.Cut(strings.TrimPrefix(fullMethod, "/"), "/")
	return svc
}

func (s *Server) kindOf(svc string) serviceKind {
	if k, ok := s.kinds[svc]; ok {
		return k
	}
	if strings.HasPrefix(svc, "grpc.reflection.") {
		return kindOpen
	}
	return kindInternal
}

// admit authenticates the caller of one RPC, puts it into the context and applies the rate limits.
func (s *Server) admit(ctx context.Context, fullMethod string) (context.Context, error) {
	var a authenticator = anonymous{}
	switch s.kindOf(serviceOf(fullMethod)) {
	case kindPublic:
		a = s.portal
	case kindInternal:
		a = s.intern
	}
	c, err := a.authenticate(ctx)
	if err != nil {
		return ctx, err
	}
	if c.Identity != "" && !s.callers[fullMethod][c.Role] {
		return ctx, errs.PermissionDenied(ReasonCallerNotAllowed, "%s may not be called by %s (role %q); its callers are declared "+
			"in its proto (icp.auth.v1.callers)", fullMethod, c.ID, c.Role)
	}
	ctx = WithCaller(ctx, c)
	if l := s.limits[fullMethod]; l != nil {
		if err := l.allow(l.key(c), time.Now()); err != nil {
			return ctx, err
		}
	}
	return ctx, nil
}

type requestIDGetter interface{ GetRequestId() string }
type orderIDGetter interface{ GetOrderId() string }

// unaryInterceptor admits the caller, recovers panics, maps errors to statuses and logs one line per
// RPC with ids only (the caller's identity, never its credential).
func (s *Server) unaryInterceptor() grpc.UnaryServerInterceptor {
	log := s.log
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				log.Error("panic in handler", zap.String("method", info.FullMethod), zap.Any("panic", p), zap.ByteString("stack", debug.Stack()))
				resp, err = nil, status.Error(codes.Internal, "internal error")
			}
			lvl := zap.InfoLevel
			switch status.Code(err) {
			case codes.Internal, codes.Unknown, codes.DataLoss:
				lvl = zap.ErrorLevel
			}
			ce := log.Check(lvl, "rpc")
			if ce == nil {
				return // the fields below cost more than the RPC's own work when nobody reads them
			}
			fields := []zap.Field{zap.String("method", info.FullMethod), zap.String("grpc_code", status.Code(err).String()),
				zap.Duration("duration", time.Since(start))}
			if c := CallerFrom(ctx); c.ID != "" {
				fields = append(fields, zap.String("caller", c.ID))
			}
			if g, ok := req.(requestIDGetter); ok && g.GetRequestId() != "" {
				fields = append(fields, zap.String("request_id", g.GetRequestId()))
			}
			if g, ok := req.(orderIDGetter); ok && g.GetOrderId() != "" {
				fields = append(fields, zap.String("order_id", g.GetOrderId()))
			}
			if r := Reason(err); r != "" {
				fields = append(fields, zap.String("reason", r))
			}
			if id := observe.TraceID(ctx); id != "" {
				fields = append(fields, zap.String("trace_id", id))
			}
			ce.Write(fields...)
		}()
		ctx, err = s.admit(ctx, info.FullMethod)
		if err == nil {
			resp, err = handler(context.WithValue(ctx, logKey{}, log), req)
		}
		return resp, ToStatus(log, info.FullMethod, err)
	}
}

type admittedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (a admittedStream) Context() context.Context { return a.ctx }

// streamInterceptor admits the caller of a streaming RPC (reflection is the only one today).
func (s *Server) streamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := s.admit(ss.Context(), info.FullMethod)
		if err != nil {
			s.log.Info("rpc", zap.String("method", info.FullMethod), zap.String("reason", Reason(ToStatus(s.log, info.FullMethod, err))))
			return ToStatus(s.log, info.FullMethod, err)
		}
		return handler(srv, admittedStream{ServerStream: ss, ctx: ctx})
	}
}
