// Package server wires the edge: the REST/JSON face of FilingService and VerificationService. It is
// a client of the services' public gRPC listeners (grpc-go stays their server): each HTTP request
// becomes one gRPC call carrying the caller's own credential, so authentication and the tenant rules
// stay in the services, unchanged. It holds no credential of its own and no database.
// Run is exported so the one-process development server can start it beside the services.
package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/observe"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/edge/internal/gateway"
	"github.com/icpverify/icpverify/services/edge/internal/page"
	"github.com/icpverify/icpverify/services/edge/openapi"
)

// defaultGCPercent is --gc-percent's default. At Go's 100 the edge's small live heap meant a
// collection every few hundred requests: a fifth of its CPU under load (bench, phase rest).
const defaultGCPercent = 400

// Run parses args, serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, args []string) error {
	f := config.NewFlags("edge")
	httpAddr := f.String("http-addr", config.DefaultEdgeHTTPAddr, "address the public HTTP/JSON listener (REST API, /openapi.json, "+
		"/healthz, /readyz) listens on")
	adminAddr := f.String("admin-addr", "", "address of the admin HTTP listener serving /healthz, /readyz and /metrics "+
		"(Prometheus), e.g. 0.0.0.0:9090; empty: none")
	filingAddr := f.String("filing-addr", config.DefaultFilingAddr, "address of the filing service's public gRPC listener")
	verificationAddr := f.String("verification-addr", config.DefaultVerificationAddr, "address of the verification service's public gRPC listener")
	sec := config.RegisterPeerTLS(f)
	maxBody := f.Int("max-body-bytes", 64<<10, "largest request body accepted; a larger one is answered 413 BODY_TOO_LARGE")
	readHeaderTimeout := f.Duration("read-header-timeout", 5*time.Second, "how long a client may take to send the request headers")
	readTimeout := f.Duration("read-timeout", 15*time.Second, "how long a client may take to send a whole request, body included")
	requestTimeout := f.Duration("request-timeout", 10*time.Second, "deadline of each call to a service (a shorter grpc-timeout header wins)")
	idleTimeout := f.Duration("idle-timeout", 2*time.Minute, "how long an idle keep-alive connection stays open")
	shutdownTimeout := f.Duration("shutdown-timeout", 15*time.Second, "on SIGTERM, how long in-flight requests may finish before a hard stop")
	gcPercent := f.Int("gc-percent", defaultGCPercent, "the Go garbage collector's heap growth target (as GOGC): the edge keeps "+
		"a few MB live and allocates per request, so a higher value spends a little memory on far less GC CPU; GOMEMLIMIT still caps the heap")
	pf := registerPageFlags(f)
	logLevel := f.String("log-level", "info", "log level: debug, info, warn, error")
	if err := f.Parse(args); err != nil {
		return err
	}
	switch {
	case *httpAddr == "":
		return errors.New("--http-addr (or HTTP_ADDR) is required")
	case *filingAddr == "" || *verificationAddr == "":
		return errors.New("--filing-addr and --verification-addr are required")
	case *maxBody <= 0:
		return errors.New("--max-body-bytes must be positive")
	case *gcPercent <= 0:
		return errors.New("--gc-percent must be positive")
	case *readHeaderTimeout <= 0 || *readTimeout <= 0 || *requestTimeout <= 0 || *idleTimeout <= 0:
		return errors.New("--read-header-timeout, --read-timeout, --request-timeout and --idle-timeout must be positive")
	}
	if err := sec.Check(); err != nil {
		return err
	}

	debug.SetGCPercent(*gcPercent)

	log, err := logging.New("edge", *logLevel)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	obs, err := observe.New(log, "edge", observe.Config{AdminAddr: *adminAddr})
	if err != nil {
		return err
	}
	// The dialer has the peer TLS files only: no internal token, so the one credential on each call
	// is the portal's own.
	peers, err := rpc.NewDialer(log, sec)
	if err != nil {
		return err
	}
	peers.Observe(obs)
	conns := map[string]*grpc.ClientConn{}
	for name, addr := range map[string]string{"filing": *filingAddr, "verification": *verificationAddr} {
		conn, err := peers.Dial(addr)
		if err != nil {
			return err
		}
		defer conn.Close()
		conns[name] = conn
		hc := healthpb.NewHealthClient(conn)
		obs.Ready(name, func(ctx context.Context) error {
			resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			if err != nil {
				return err
			}
			if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				return fmt.Errorf("%s", resp.GetStatus())
			}
			return nil
		})
	}

	gw, err := gateway.New(ctx, gateway.Options{Filing: conns["filing"], Verification: conns["verification"],
		MaxBodyBytes: int64(*maxBody), RequestTimeout: *requestTimeout})
	if err != nil {
		return err
	}
	pg, err := pf.newPage(log, conns["verification"], *requestTimeout)
	if err != nil {
		return err
	}
	handler := publicMux(obs, gw, pg)

	lis, err := net.Listen("tcp", *httpAddr)
	if err != nil {
		return fmt.Errorf("http listener on %s: %w", *httpAddr, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: *readHeaderTimeout,
		ReadTimeout:       *readTimeout,
		WriteTimeout:      *readTimeout + *requestTimeout + 5*time.Second,
		IdleTimeout:       *idleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	stopAdmin, err := obs.StartAdmin()
	if err != nil {
		lis.Close()
		return err
	}
	defer stopAdmin()

	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	obs.SetServing(true)
	log.Info("edge listening", zap.String("http_addr", "http://"+lis.Addr().String()),
		zap.String("filing_addr", *filingAddr), zap.String("verification_addr", *verificationAddr),
		zap.Bool("page", pg != nil), zap.Bool("peer_tls", sec.PeerTLS()), zap.Int("max_body_bytes", *maxBody), zap.Duration("request_timeout", *requestTimeout))

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	obs.SetServing(false)
	log.Info("edge shutting down", zap.Duration("timeout", *shutdownTimeout))
	sctx, cancel := context.WithTimeout(context.Background(), *shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		log.Warn("hard stop: requests still running at the shutdown timeout", zap.Error(err))
	}
	return nil
}

// publicMux serves the REST API, /openapi.json, the 短信核验 page when pg is not nil, and /healthz
// and /readyz (the admin listener has them too, with /metrics). Every response is counted by code
// and method on /metrics.
func publicMux(obs *observe.Observer, gw http.Handler, pg *page.Page) http.Handler {
	mux := http.NewServeMux()
	probes := obs.Handler()
	mux.Handle("GET /healthz", probes)
	mux.Handle("GET /readyz", probes)
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openapi.JSON)
	})
	if pg != nil {
		pg.Register(mux)
	}
	mux.Handle("/", gw)
	requests := promauto.With(obs.Registry).NewCounterVec(prometheus.CounterOpts{
		Name: "edge_http_requests_total", Help: "HTTP requests the edge answered, by status code and method.",
	}, []string{"code", "method"})
	return promhttp.InstrumentHandlerCounter(requests, mux)
}
