package dispatcher

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/batch"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// Failover: with more than one provider (Providers), each message goes to the first provider in
// order whose breaker lets it through and that has not had it yet. The hand-off is recorded durably
// (Store.Hand) before the call, so a retry after a crash or a lease expiry goes to the next one: no
// provider gets one message id twice, but for one idempotent by our id (provider.IsIdempotent). A
// transient or account refusal fails over to the next provider at once; a per-number limit or a
// permanent refusal never does (the number, not the provider, is the cause). A provider that
// answered with a refusal (a *provider.Error: it did not take the message) may get it again in a
// second round once every provider was tried; one whose outcome is unknown (a timeout, a transport
// error, a crash) never does. When no provider is left, the message FAILS. A message SENT but found
// UNDELIVERED or overdue may come back QUEUED for a redelivery (domain/redeliver.go, done by the
// store): the providers that had it are barred then, so pick hands it to one that never had it.

// ErrorAllProvidersTried is the last error of a message no provider is left for.
const ErrorAllProvidersTried = "every provider was handed the message; none accepted it"

// errorBreakersOpen is the last error of a message whose remaining providers' breakers are open.
const errorBreakersOpen = "every remaining provider's circuit breaker is open"

// route is one failover provider.
type route struct {
	p          provider.Provider
	name       string
	idempotent bool
	br         *breaker
	sends      *batch.Group[domain.Message, provider.Accepted] // nil unless a batch provider
	marks      *batch.Group[domain.Message, bool]
}

func (d *Dispatcher) initRoutes() {
	if len(d.Providers) < 2 {
		return
	}
	failures, cooldown := d.BreakerFailures, d.BreakerCooldown
	if failures <= 0 {
		failures = DefaultBreakerFailures
	}
	if cooldown <= 0 {
		cooldown = DefaultBreakerCooldown
	}
	for _, p := range d.Providers {
		r := &route{p: p, name: p.Name(), idempotent: provider.IsIdempotent(p)}
		r.br = &breaker{failures: failures, cooldown: cooldown, clock: d.Clock,
			onState: func(s BreakerState) { d.Metrics.breaker(r.name, s) }}
		if bp, ok := p.(provider.BatchProvider); ok {
			r.sends = &batch.Group[domain.Message, provider.Accepted]{Run: func(ctx context.Context, ms []domain.Message) []batch.Result[provider.Accepted] {
				return d.sendBatch(ctx, bp, ms)
			}, MaxBatch: max(bp.MaxBatch(), 1), Flights: max(d.BatchFlights, 1)}
		}
		r.marks = &batch.Group[domain.Message, bool]{Run: d.markSentBatch(r.name), MaxBatch: 256}
		d.routes = append(d.routes, r)
	}
}

// BreakerStates reports each failover provider's breaker state, in order.
func (d *Dispatcher) BreakerStates() map[string]BreakerState {
	d.init()
	out := make(map[string]BreakerState, len(d.routes))
	for _, r := range d.routes {
		out[r.name] = r.br.State()
	}
	return out
}

// handleFailover is handle with more than one provider.
func (d *Dispatcher) handleFailover(ctx context.Context, m domain.Message) error {
	reservedAt, ok, err := d.decide(ctx, m)
	if err != nil || !ok {
		return err
	}
	r, lost, open, err := d.pick(ctx, m)
	switch {
	case err != nil:
		return err // the lease brings the message back
	case lost:
		d.logMsg(zap.WarnLevel, "claim no longer current; not sending", m)
		return nil
	case r == nil:
		final := !open || m.Attempts >= d.MaxAttempts
		lastErr := ErrorAllProvidersTried
		if open {
			lastErr = errorBreakersOpen
		}
		return d.recordFailover(ctx, m, reservedAt, d.Provider.Name(), errors.New(lastErr), final,
			d.Clock.Now().Add(domain.Backoff(m.Attempts, d.Jitter())))
	}
	var accepted provider.Accepted
	if r.sends != nil {
		accepted, err = r.sends.Do(ctx, m)
	} else {
		sendCtx, cancel := context.WithTimeout(ctx, d.SendTimeout)
		start := time.Now()
		accepted, err = r.p.Send(sendCtx, d.providerMessage(m))
		d.Metrics.timed(r.name, time.Since(start))
		cancel()
	}
	if err != nil {
		return d.failedVia(ctx, m, reservedAt, r, err)
	}
	r.br.done(true)
	d.Metrics.result(r.name, ProviderSent)
	d.Metrics.count(r.name, ResultSent)
	m.ProviderIDs = accepted.ProviderIDs
	current, err := r.marks.Do(ctx, m)
	if err != nil {
		return err // the lease brings it back; the hand-off sends it to the next provider
	}
	d.logSent(m, current)
	return nil
}

// pick finds the provider m goes to and records the hand-off: the first in order that never had it,
// else (a second round) the first that refused it or is idempotent. lost: the claim is stale. open:
// a provider was skipped because its breaker is open (nil r then means "later", not "never").
func (d *Dispatcher) pick(ctx context.Context, m domain.Message) (r *route, lost, open bool, err error) {
	now := d.Clock.Now()
	for _, again := range []bool{false, true} {
		for _, r := range d.routes {
			if !r.br.allow() {
				if !again {
					d.Metrics.result(r.name, ProviderSkippedOpen)
				}
				open = true
				continue
			}
			current, handed, err := d.Store.Hand(ctx, m, r.name, now, again, r.idempotent)
			if err != nil || !current || !handed {
				r.br.release()
			}
			if err != nil || !current {
				return nil, !current, open, err
			}
			if handed {
				return r, false, open, nil
			}
		}
	}
	return nil, false, open, nil
}

// failedVia records r's refusal of m: a transient or account refusal fails over (at once when a
// provider follows r in order), the others are retried or fail as with one provider.
func (d *Dispatcher) failedVia(ctx context.Context, m domain.Message, reservedAt time.Time, r *route, sendErr error) error {
	class := provider.ClassOf(sendErr)
	r.br.done(class == provider.PerNumberLimit || class == provider.Permanent)
	d.Metrics.result(r.name, classResult(class))
	var refusal *provider.Error
	if errors.As(sendErr, &refusal) {
		// The gateway answered: it does not have the message. A failure here leaves it "handed",
		// which only means it is not asked again.
		// A per-number limit keeps the message with this provider (no failover).
		if err := d.Store.Refused(ctx, m, r.name, class == provider.PerNumberLimit); err != nil {
			d.logMsg(zap.WarnLevel, "could not record the refusal", m, zap.Error(err))
		}
	}
	final := m.Attempts >= d.MaxAttempts || class == provider.Permanent
	wait := domain.Backoff(m.Attempts, d.Jitter())
	switch {
	case class == provider.PerNumberLimit:
		wait = max(wait, domain.PerNumberLimitWait)
	case class != provider.Permanent && r != d.routes[len(d.routes)-1]:
		wait = 0 // fail over now
	}
	return d.recordFailover(ctx, m, reservedAt, r.name, sendErr, final, d.Clock.Now().Add(wait))
}

// recordFailover records a failed attempt of m (via provider) as recordFailed does, and wakes a
// worker for a failover that is due at once.
func (d *Dispatcher) recordFailover(ctx context.Context, m domain.Message, reservedAt time.Time, via string, sendErr error,
	final bool, retryAt time.Time) error {
	lastErr := truncate(sendErr.Error(), 500)
	if _, err := d.Store.SendFailed(ctx, m, reservedAt, via, lastErr, final, retryAt); err != nil {
		return errors.Join(sendErr, err)
	}
	fields := []zap.Field{zap.String("via", via), zap.Error(sendErr)}
	if final {
		d.Metrics.count(via, ResultFailed)
		d.logMsg(zap.WarnLevel, "no provider took the message; giving up", m, fields...)
		return nil
	}
	d.Metrics.count(via, ResultRetried)
	d.logMsg(zap.WarnLevel, "provider refused the message; will retry", m, append(fields, zap.Time("next_attempt", retryAt))...)
	if !retryAt.After(d.Clock.Now()) {
		d.Wake()
	}
	return nil
}

func classResult(c provider.Class) string {
	switch c {
	case provider.PerNumberLimit:
		return ProviderPerNumber
	case provider.Account:
		return ProviderAccount
	case provider.Permanent:
		return ProviderPermanent
	}
	return ProviderTransient
}
