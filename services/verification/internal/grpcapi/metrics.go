package grpcapi

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// The outcomes of icp_verification_outcomes_total: one per public Verify call, plus "locked" each
// time a failure locks a verifier (that call also counts as a mismatch).
const (
	OutcomePassedWaiting = "passed_waiting"
	OutcomeAllPassed     = "all_passed"
	OutcomeMismatch      = "mismatch"
	OutcomeLocked        = "locked"
	OutcomeInvalid       = "invalid"
	OutcomeError         = "error"
)

// Metrics counts the verification outcomes and resends. A nil *Metrics counts nothing. The labels
// are small fixed sets: never a phone, a code or an order id.
type Metrics struct {
	outcomes *prometheus.CounterVec
	resends  *prometheus.CounterVec
}

// NewMetrics registers the verification metrics in reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icp_verification_outcomes_total",
			Help: "Public Verify calls by outcome (passed_waiting, all_passed, mismatch, invalid, error), and verifiers locked after too many failures (locked).",
		}, []string{"outcome"}),
		resends: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "icp_verification_resends_total",
			Help: "Code resends (public ResendCode and internal ResendVerifierCode) by result (sent, too_soon, limit_reached, not_pending, mismatch, invalid, error).",
		}, []string{"result"}),
	}
	for _, o := range []string{OutcomePassedWaiting, OutcomeAllPassed, OutcomeMismatch, OutcomeLocked, OutcomeInvalid, OutcomeError} {
		m.outcomes.WithLabelValues(o)
	}
	for _, r := range []string{"sent", "too_soon", "limit_reached", "not_pending", "mismatch", "invalid", "error"} {
		m.resends.WithLabelValues(r)
	}
	reg.MustRegister(m.outcomes, m.resends)
	return m
}

// Locked counts a verifier locked after too many failed attempts (the stores call it).
func (m *Metrics) Locked() {
	if m != nil {
		m.outcomes.WithLabelValues(OutcomeLocked).Inc()
	}
}

func (m *Metrics) verified(resp *pb.VerifyResponse, err error) {
	if m == nil {
		return
	}
	outcome := OutcomeError
	switch {
	case err == nil && resp.GetResult() == pb.VerifyResult_VERIFY_RESULT_ALL_PASSED:
		outcome = OutcomeAllPassed
	case err == nil:
		outcome = OutcomePassedWaiting
	case reason(err) == domain.ReasonNotMatched:
		outcome = OutcomeMismatch
	case kind(err) == errs.KindInvalidArgument:
		outcome = OutcomeInvalid
	}
	m.outcomes.WithLabelValues(outcome).Inc()
}

func (m *Metrics) resent(err error) {
	if m == nil {
		return
	}
	result := "error"
	switch r := reason(err); {
	case err == nil:
		result = "sent"
	case r == domain.ReasonResendTooSoon:
		result = "too_soon"
	case r == domain.ReasonResendLimit:
		result = "limit_reached"
	case r == domain.ReasonVerifierNotPending:
		result = "not_pending"
	case r == domain.ReasonNotMatched:
		result = "mismatch"
	case kind(err) == errs.KindInvalidArgument:
		result = "invalid"
	}
	m.resends.WithLabelValues(result).Inc()
}

func reason(err error) string {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Reason
	}
	return ""
}

func kind(err error) errs.Kind {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return -1
}
