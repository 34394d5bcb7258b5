package dispatcher

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
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
	// results and breakers: failover (more than one provider).
	results  *prometheus.CounterVec
	breakers *prometheus.GaugeVec
}

// The results of icp_sms_provider_results_total: what one provider did with one message under
// failover (a refusal by its class, or its open breaker skipped it).
const (
	ProviderSent        = "sent"
	ProviderTransient   = "transient"
	ProviderAccount     = "account"
	ProviderPerNumber   = "per_number"
	ProviderPermanent   = "permanent"
	ProviderSkippedOpen = "skipped_open"
)

// ProviderResults are the result labels of icp_sms_provider_results_total.
var ProviderResults = []string{ProviderSent, ProviderTransient, ProviderAccount, ProviderPerNumber, ProviderPermanent, ProviderSkippedOpen}

// NewMetrics registers the dispatcher metrics in reg, with the series of each provider at zero.
func NewMetrics(reg prometheus.Registerer, providers ...string) *Metrics {
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
			Help: "Delivery receipts by provider and result (applied, repeat, parked, ignored, unknown, redelivered, rejected), and AT_RISK sweep marks (at_risk, redelivered).",
		}, []string{"provider", "result"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icp_sms_provider_results_total",
			Help: "Failover: what each provider did with a message (sent, transient, account, per_number, permanent, skipped_open).",
		}, []string{"provider", "result"}),
		breakers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "icp_sms_breaker_state",
			Help: "Failover: each provider's circuit breaker (0 closed, 1 half-open, 2 open).",
		}, []string{"provider"}),
	}
	for _, provider := range providers {
		for _, r := range []string{ResultSent, ResultRetried, ResultFailed, ResultCapped} {
			m.messages.WithLabelValues(provider, r)
		}
		for _, r := range ReceiptResults {
			m.receipts.WithLabelValues(provider, r)
		}
		if len(providers) > 1 {
			for _, r := range ProviderResults {
				m.results.WithLabelValues(provider, r)
			}
			m.breakers.WithLabelValues(provider)
		}
	}
	reg.MustRegister(m.messages, m.send, m.batch, m.receipts, m.results, m.breakers)
	return m
}

// ReceiptResults are the result labels of icp_sms_receipts_total: domain.ReceiptOutcome's (redelivered:
// an UNDELIVERED receipt, or the sweep, queued the message again for the next provider), rejected
// (a receipt that did not parse or had no id) and at_risk (the sweep's marks).
var ReceiptResults = []string{"applied", "repeat", "parked", "ignored", "unknown", string(domain.ReceiptRedelivered), ResultRejected,
	ResultAtRisk}

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

// atRisk counts one sweep's AT_RISK marks and redeliveries.
func (m *Metrics) atRisk(provider string, n domain.Swept) {
	if m == nil {
		return
	}
	if n.AtRisk > 0 {
		m.receipts.WithLabelValues(provider, ResultAtRisk).Add(float64(n.AtRisk))
	}
	if n.Redelivered > 0 {
		m.receipts.WithLabelValues(provider, string(domain.ReceiptRedelivered)).Add(float64(n.Redelivered))
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

func (m *Metrics) result(provider, result string) {
	if m != nil {
		m.results.WithLabelValues(provider, result).Inc()
	}
}

func (m *Metrics) breaker(provider string, s BreakerState) {
	if m != nil {
		m.breakers.WithLabelValues(provider).Set(float64(s))
	}
}
