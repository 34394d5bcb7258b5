// Package observe is the observability of one service: a Prometheus registry (gRPC server metrics,
// the domain metrics of the service, Go and process collectors), an admin HTTP listener serving
// /healthz, /readyz and /metrics (--admin-addr), and OpenTelemetry tracing with W3C trace-context
// propagation, exported over OTLP/gRPC when --otlp-endpoint is set.
//
// Everything is per Observer, nothing global: the one-process development server runs four services
// side by side, each with its own registry and tracer provider.
package observe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
	"google.golang.org/grpc/stats"

	"github.com/icpverify/icpverify/pkg/config"
)

// Config says what to switch on; the zero value is metrics only, no admin listener, no tracing.
type Config struct {
	// AdminAddr is where /healthz, /readyz and /metrics are served; empty: no admin listener.
	AdminAddr string
	// OTLPEndpoint switches tracing on: an OTLP/gRPC collector as host:port (plaintext, e.g. a
	// collector sidecar or agent) or as a URL, https://host:port for TLS; empty: off.
	OTLPEndpoint string
	// SampleRatio is the share of new traces recorded (parent-based: a sampled caller's trace is
	// always continued; 0: only those).
	SampleRatio float64
	// Exporter, when set, switches tracing on with this exporter instead of OTLP (tests:
	// tracetest.NewInMemoryExporter), synchronously so spans are there when a call returns.
	Exporter sdktrace.SpanExporter
}

// Observer is the observability of one service.
type Observer struct {
	// Registry holds every metric the service exposes on /metrics.
	Registry *prometheus.Registry
	// GRPC are the grpc_server_* metrics, fed by the interceptors pkg/rpc installs.
	GRPC *grpcprom.ServerMetrics

	log       *zap.Logger
	adminAddr string
	sdk       *sdktrace.TracerProvider // nil: tracing off
	tp        trace.TracerProvider
	prop      propagation.TextMapPropagator
	serving   atomic.Bool

	mu        sync.Mutex
	checks    []readyCheck
	boundAddr string
}

type readyCheck struct {
	name string
	fn   func(context.Context) error
}

// New returns the observer cfg describes. It opens nothing yet: the admin listener starts with
// StartAdmin (pkg/rpc does it when the server starts serving).
func New(log *zap.Logger, service string, cfg Config) (*Observer, error) {
	if cfg.SampleRatio < 0 || cfg.SampleRatio > 1 {
		return nil, fmt.Errorf("--trace-sample-ratio %v: must be between 0 and 1", cfg.SampleRatio)
	}
	if log == nil {
		log = zap.NewNop()
	}
	o := &Observer{
		Registry: prometheus.NewRegistry(), log: log, adminAddr: cfg.AdminAddr,
		tp:   noop.NewTracerProvider(),
		prop: propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
	}
	o.GRPC = grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(
		grpcprom.WithHistogramBuckets([]float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10})))
	o.Registry.MustRegister(o.GRPC, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	exp := cfg.Exporter
	if exp == nil && cfg.OTLPEndpoint != "" {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpointURL(cfg.OTLPEndpoint)}
		if !strings.Contains(cfg.OTLPEndpoint, "://") {
			opts = []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.OTLPEndpoint), otlptracegrpc.WithInsecure()}
		}
		var err error
		// The exporter connects lazily: a collector that is down loses spans, never the service.
		if exp, err = otlptracegrpc.New(context.Background(), opts...); err != nil {
			return nil, fmt.Errorf("OTLP exporter: %w", err)
		}
	}
	if exp != nil {
		ratio := cfg.SampleRatio
		res, err := resource.Merge(resource.Default(), resource.NewSchemaless(semconv.ServiceName(service)))
		if err != nil {
			return nil, err
		}
		spanOpt := sdktrace.WithBatcher(exp)
		if cfg.Exporter != nil {
			spanOpt = sdktrace.WithSyncer(exp)
		}
		o.sdk = sdktrace.NewTracerProvider(spanOpt, sdktrace.WithResource(res),
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))))
		o.tp = o.sdk
		log.Info("tracing on", zap.String("otlp_endpoint", cfg.OTLPEndpoint), zap.Float64("sample_ratio", ratio))
	}
	return o, nil
}

// Tracing tells whether spans are recorded and exported.
func (o *Observer) Tracing() bool { return o != nil && o.sdk != nil }

// TracerProvider is the service's tracer provider; a no-op one when tracing is off.
func (o *Observer) TracerProvider() trace.TracerProvider {
	if o == nil {
		return noop.NewTracerProvider()
	}
	return o.tp
}

// ServerHandler is the gRPC server stats handler that starts a span per RPC, continuing the
// caller's trace; nil when tracing is off.
func (o *Observer) ServerHandler() stats.Handler {
	if !o.Tracing() {
		return nil
	}
	return otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(o.tp), otelgrpc.WithPropagators(o.prop))
}

// ClientHandler is the gRPC client stats handler that starts a span per call and sends the trace
// context to the peer; nil when tracing is off.
func (o *Observer) ClientHandler() stats.Handler {
	if !o.Tracing() {
		return nil
	}
	return otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(o.tp), otelgrpc.WithPropagators(o.prop))
}

// Ready adds a readiness check (e.g. the database ping); /readyz fails while any check fails.
func (o *Observer) Ready(name string, check func(context.Context) error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.checks = append(o.checks, readyCheck{name: name, fn: check})
}

// SetServing says whether the gRPC server accepts RPCs (pkg/rpc: true once serving, false as soon
// as shutdown starts).
func (o *Observer) SetServing(on bool) { o.serving.Store(on) }

// Handler serves /healthz, /readyz and /metrics.
func (o *Observer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := o.ready(r.Context()); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready:", err)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, ErrorLog: zap.NewStdLog(o.log.Named("metrics")),
	}))
	return mux
}

func (o *Observer) ready(ctx context.Context) error {
	if !o.serving.Load() {
		return errors.New("gRPC server not serving")
	}
	o.mu.Lock()
	checks := o.checks
	o.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var problems []error
	for _, c := range checks {
		if err := c.fn(ctx); err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", c.name, err))
		}
	}
	return errors.Join(problems...)
}

// StartAdmin listens on the admin address (nothing when it is empty) and serves Handler until the
// returned stop is called.
func (o *Observer) StartAdmin() (stop func(), err error) {
	if o == nil || o.adminAddr == "" {
		return func() {}, nil
	}
	lis, err := net.Listen("tcp", o.adminAddr)
	if err != nil {
		return nil, fmt.Errorf("admin listener on %s: %w", o.adminAddr, err)
	}
	return o.ServeAdmin(lis), nil
}

// ServeAdmin serves Handler on lis until the returned stop is called.
func (o *Observer) ServeAdmin(lis net.Listener) (stop func()) {
	srv := &http.Server{Handler: o.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.log.Error("admin listener stopped", zap.Error(err))
		}
	}()
	o.mu.Lock()
	o.boundAddr = lis.Addr().String()
	o.mu.Unlock()
	o.log.Info("admin listening", zap.String("admin_addr", lis.Addr().String()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}

// AdminAddr is the address the admin listener is bound to ("" before it starts); with port 0 in
// --admin-addr it tells the port chosen.
func (o *Observer) AdminAddr() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.boundAddr
}

// Shutdown flushes the spans not exported yet.
func (o *Observer) Shutdown(ctx context.Context) error {
	if !o.Tracing() {
		return nil
	}
	return o.sdk.Shutdown(ctx)
}

// TraceID returns the trace id of ctx's span, "" without one; for log lines.
func TraceID(ctx context.Context) string {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		return sc.TraceID().String()
	}
	return ""
}

// Emit reports one sampled value of a gauge with its label values.
type Emit func(desc *prometheus.Desc, value float64, labels ...string)

// Sample registers gauges computed at scrape time by collect (a count query, a memory scan), so
// they are as fresh as the scrape and cost nothing when nobody scrapes. collect gets a context that
// ends after 2 seconds; when it fails, the gauges are left out of that scrape and the error logged.
func (o *Observer) Sample(collect func(ctx context.Context, emit Emit) error, descs ...*prometheus.Desc) {
	o.Registry.MustRegister(&sampler{descs: descs, collect: collect, log: o.log})
}

type sampler struct {
	descs   []*prometheus.Desc
	collect func(context.Context, Emit) error
	log     *zap.Logger
}

func (s *sampler) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range s.descs {
		ch <- d
	}
}

func (s *sampler) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out []prometheus.Metric
	err := s.collect(ctx, func(d *prometheus.Desc, v float64, labels ...string) {
		if m, err := prometheus.NewConstMetric(d, prometheus.GaugeValue, v, labels...); err == nil {
			out = append(out, m)
		}
	})
	if err != nil {
		s.log.Warn("metrics: sampling failed", zap.Error(err))
		return
	}
	for _, m := range out {
		ch <- m
	}
}

// FromFlags returns the observer the shared flags describe (--admin-addr, --otlp-endpoint,
// --trace-sample-ratio).
func FromFlags(log *zap.Logger, service string, c config.Common) (*Observer, error) {
	cfg := Config{AdminAddr: config.Get(c.AdminAddr), OTLPEndpoint: config.Get(c.OTLPEndpoint)}
	if c.TraceSampleRatio != nil {
		cfg.SampleRatio = *c.TraceSampleRatio
	}
	return New(log, service, cfg)
}
