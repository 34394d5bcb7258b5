package sweeper

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icpverify/icpverify/pkg/observe"
)

// Counter is what the deadline gauges are sampled from: the pending timers, and those of them due
// before overdueBefore (both engines implement it).
type Counter interface {
	CountPending(ctx context.Context, overdueBefore time.Time) (pending, overdue int, err error)
}

// Metrics counts fired and re-armed timers. A nil *Metrics counts nothing.
type Metrics struct {
	fired   *prometheus.CounterVec
	noon    *prometheus.CounterVec
	rearmed *prometheus.CounterVec
}

// NewMetrics registers the deadline metrics in o: icp_deadlines_fired_total{closed} (close timers),
// icp_noon_resends_fired_total{sent} (noon resend timers),
// icp_deadlines_rearmed_total{reason}, and the gauges icp_deadlines_pending and icp_deadlines_overdue
// (pending timers more than lease past their due time: the sweeper is behind or verification keeps
// refusing), sampled from c at scrape time.
func NewMetrics(o *observe.Observer, c Counter, now func() time.Time, lease time.Duration) *Metrics {
	m := &Metrics{
		fired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icp_deadlines_fired_total",
			Help: "Deadline timers fired, by whether the verification session was closed (true) or had already finished (false).",
		}, []string{"closed"}),
		noon: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icp_noon_resends_fired_total",
			Help: "Noon resend timers fired, by whether verification sent automatic codes (true) or had nobody to send to (false: all passed, closed, already sent, disabled).",
		}, []string{"sent"}),
		rearmed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icp_deadlines_rearmed_total",
			Help: "Verification calls (close or noon resend) that did not fire the timer, by reason (not_reached, error); the timer is tried again.",
		}, []string{"reason"}),
	}
	m.fired.WithLabelValues("true")
	m.fired.WithLabelValues("false")
	m.noon.WithLabelValues("true")
	m.noon.WithLabelValues("false")
	m.rearmed.WithLabelValues("not_reached")
	m.rearmed.WithLabelValues("error")
	o.Registry.MustRegister(m.fired, m.noon, m.rearmed)
	pending := prometheus.NewDesc("icp_deadlines_pending", "Timers (deadlines and noon resends) not yet fired or cancelled.", nil, nil)
	overdue := prometheus.NewDesc("icp_deadlines_overdue", "Pending timers (deadlines and noon resends) more than the lease past their due time.", nil, nil)
	o.Sample(func(ctx context.Context, emit observe.Emit) error {
		p, od, err := c.CountPending(ctx, now().Add(-lease))
		if err != nil {
			return err
		}
		emit(pending, float64(p))
		emit(overdue, float64(od))
		return nil
	}, pending, overdue)
	return m
}

func (m *Metrics) firedOne(closed bool) {
	if m == nil {
		return
	}
	if closed {
		m.fired.WithLabelValues("true").Inc()
	} else {
		m.fired.WithLabelValues("false").Inc()
	}
}

func (m *Metrics) noonOne(sent bool) {
	if m == nil {
		return
	}
	if sent {
		m.noon.WithLabelValues("true").Inc()
	} else {
		m.noon.WithLabelValues("false").Inc()
	}
}

func (m *Metrics) rearmedOne(reason string) {
	if m != nil {
		m.rearmed.WithLabelValues(reason).Inc()
	}
}
