package outbox

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/observe"
)

// TargetStats is what a queue holds for one target: live rows, dead (parked) rows, and when the
// oldest live row was written (zero without live rows).
type TargetStats struct {
	Target        string
	Pending, Dead int
	Oldest        time.Time
}

// StatsQueue is a queue that can count its rows cheaply (both PGQueue and MemQueue can).
type StatsQueue interface {
	Stats(ctx context.Context) ([]TargetStats, error)
}

// The delivery results of icp_outbox_delivered_total.
const (
	resultDelivered = "delivered"
	resultRetried   = "retried"
	resultParked    = "parked"
)

type metrics struct {
	delivered *prometheus.CounterVec
	tracer    trace.Tracer
}

// observe registers the relay's metrics in o: deliveries by target and result, and, sampled at
// scrape time from the queue, the live and dead rows per target and the age of the oldest live row
// (the relay's lag).
func (r *Relay) observe(o *observe.Observer) *metrics {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icp_outbox_delivered_total",
			Help: "Outbox delivery attempts by target and result (delivered, retried, parked).",
		}, []string{"target", "result"}),
		tracer: o.TracerProvider().Tracer("github.com/icpverify/icpverify/pkg/outbox"),
	}
	for _, target := range r.targets() {
		for _, res := range []string{resultDelivered, resultRetried, resultParked} {
			m.delivered.WithLabelValues(target, res)
		}
	}
	if err := o.Registry.Register(m.delivered); err != nil {
		r.Log.Warn("outbox metrics not registered", zap.Error(err))
		return m
	}
	sq, ok := r.Queue.(StatsQueue)
	if !ok {
		return m
	}
	pending := prometheus.NewDesc("icp_outbox_pending", "Undelivered live outbox rows by target.", []string{"target"}, nil)
	dead := prometheus.NewDesc("icp_outbox_dead", "Outbox rows the receiver refused for good (parked), by target.", []string{"target"}, nil)
	age := prometheus.NewDesc("icp_outbox_oldest_age_seconds", "Age of the oldest undelivered live outbox row by target (the relay's lag); 0 when none.",
		[]string{"target"}, nil)
	o.Sample(func(ctx context.Context, emit observe.Emit) error {
		stats, err := sq.Stats(ctx)
		if err != nil {
			return err
		}
		now := r.Clock.Now()
		seen := map[string]bool{}
		for _, st := range stats {
			seen[st.Target] = true
			emit(pending, float64(st.Pending), st.Target)
			emit(dead, float64(st.Dead), st.Target)
			lag := 0.0
			if !st.Oldest.IsZero() {
				lag = max(now.Sub(st.Oldest).Seconds(), 0)
			}
			emit(age, lag, st.Target)
		}
		for _, target := range r.targets() { // the known targets are always there, so alerts see 0, not absence
			if !seen[target] {
				emit(pending, 0, target)
				emit(dead, 0, target)
				emit(age, 0, target)
			}
		}
		return nil
	}, pending, dead, age)
	return m
}

// targets lists the targets the relay has a handler of either kind for.
func (r *Relay) targets() []string {
	var out []string
	for t := range r.Handlers {
		out = append(out, t)
	}
	for t := range r.BatchHandlers {
		if _, ok := r.Handlers[t]; !ok {
			out = append(out, t)
		}
	}
	return out
}

func (m *metrics) count(target, result string) {
	if m != nil {
		m.delivered.WithLabelValues(target, result).Inc()
	}
}

// startSpan starts the root span of one delivery: the relay runs in the background, so each
// delivery begins a trace of its own, which the gRPC client span and the receiver continue.
func (m *metrics) startSpan(ctx context.Context, x Row) (context.Context, trace.Span) {
	if m == nil {
		return ctx, trace.SpanFromContext(context.Background()) // a no-op span
	}
	return m.tracer.Start(ctx, "outbox.deliver "+x.Target, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("icp.outbox.target", x.Target), attribute.Int64("icp.outbox.id", x.ID),
			attribute.Int("icp.outbox.attempt", x.Attempts)))
}

func endSpan(span trace.Span, err error, note *delivery) {
	if note.orderID != "" {
		span.SetAttributes(attribute.String("icp.order_id", note.orderID))
	}
	if err != nil {
		span.SetStatus(codes.Error, status.Code(err).String())
	}
	span.End()
}

// delivery collects what Call learns of a payload (its ids) for the delivery's log line and span.
type delivery struct{ orderID, requestID string }

type deliveryKey struct{}

type batchNotesKey struct{}

func noteIDs(ctx context.Context, req any) {
	d, _ := ctx.Value(deliveryKey{}).(*delivery)
	d.note(req)
}

// note keeps req's order and request ids (nil d: nobody listens).
func (d *delivery) note(req any) {
	if d == nil {
		return
	}
	if g, ok := req.(interface{ GetOrderId() string }); ok {
		d.orderID = g.GetOrderId()
	}
	if g, ok := req.(interface{ GetRequestId() string }); ok {
		d.requestID = g.GetRequestId()
	}
}

// startBatchSpan starts the root span of one batch call of rows to target.
func (m *metrics) startBatchSpan(ctx context.Context, target string, rows []Row) (context.Context, trace.Span) {
	if m == nil {
		return ctx, trace.SpanFromContext(context.Background())
	}
	return m.tracer.Start(ctx, "outbox.deliver_batch "+target, trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attribute.String("icp.outbox.target", target), attribute.Int("icp.outbox.rows", len(rows))))
}
