package dispatcher

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The results of icp_sms_messages_total.
const (
	ResultSent    = "sent"    // the provider accepted the message
	ResultRetried = "retried" // the provider refused it; it is tried again later
	ResultFailed  = "failed"  // given up: attempts exhausted, expired, or nothing to send
	ResultCapped  = "capped"  // a per-phone cap made it wait
)

// Metrics counts provider outcomes by provider and result, and times provider calls. A nil *Metrics
// counts nothing. Never a phone or message id as a label.
type Metrics struct {
	messages *prometheus.CounterVec
	receipts *prometheus.CounterVec
	send     *prometheus.HistogramVec
	batch    *prometheus.HistogramVec
}

// NewMetrics registers the dispatcher metrics in reg, with the series of provider at zero.
func NewMetrics(reg prometheus.Registerer, provider string) *Metrics {
	m := &Metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icp_sms_messages_total",
			Help: "SMS dispatch outcomes by provider and result (sent, retried, failed, capped).",
		}, []string{"provider", "result"}),
		send: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "icp_sms_send_seconds",
			Help:    "Duration of one provider call, by provider.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"provider"}),
		batch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "icp_sms_send_batch_messages",
			Help:    "Messages in one provider batch call, by provider (batch providers only).",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
		}, []string{"provider"}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icp_sms_receipts_total",
			Help: "Delivery receipts by provider and result (applied, repeat, parked, ignored, unknown, rejected), and AT_RISK marks (result at_risk).",
		}, []string{"provider", "result"}),
	}
	for _, r := range []string{ResultSent, ResultRetried, ResultFailed, ResultCapped} {
		m.messages.WithLabelValues(provider, r)
	}
	for _, r := range ReceiptResults {
		m.receipts.WithLabelValues(provider, r)
	}
	reg.MustRegister(m.messages, m.send, m.batch, m.receipts)
	return m
}

// ReceiptResults are the result labels of icp_sms_receipts_total: domain.ReceiptOutcome's, rejected
// (a receipt that did not parse or had no id) and at_risk (the sweep's marks).
var ReceiptResults = []string{"applied", "repeat", "parked", "ignored", "unknown", ResultRejected, ResultAtRisk}

// The receipt results that are no domain.ReceiptOutcome.
const (
	ResultRejected = "rejected"
	ResultAtRisk   = "at_risk"
)

// Receipt counts one receipt of provider with result.
func (m *Metrics) Receipt(provider, result string) {
	if m != nil {
		m.receipts.WithLabelValues(provider, result).Inc()
	}
}

func (m *Metrics) atRisk(provider string, n int) {
	if m != nil && n > 0 {
		m.receipts.WithLabelValues(provider, ResultAtRisk).Add(float64(n))
	}
}

func (m *Metrics) count(provider, result string) {
	if m != nil {
		m.messages.WithLabelValues(provider, result).Inc()
	}
}

func (m *Metrics) timed(provider string, d time.Duration) {
	if m != nil {
		m.send.WithLabelValues(provider).Observe(d.Seconds())
	}
}

// timedBatch times one batch call of n messages (icp_sms_send_seconds counts it as one call).
func (m *Metrics) timedBatch(provider string, d time.Duration, n int) {
	if m != nil {
		m.send.WithLabelValues(provider).Observe(d.Seconds())
		m.batch.WithLabelValues(provider).Observe(float64(n))
	}
}
