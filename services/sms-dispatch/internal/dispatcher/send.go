package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/logging"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// handleBatch handles claimed messages: those of different phones at once (each taking a send
// slot), those of one phone one after another in claim order (so the caps see them in due order).
func (d *Dispatcher) handleBatch(ctx context.Context, msgs []domain.Message) error {
	var (
		mu   sync.Mutex
		errs []error
	)
	run := func(group []domain.Message) {
		for _, m := range group {
			select {
			case d.sendSlots <- struct{}{}:
			case <-ctx.Done():
				return
			}
			err := d.handle(ctx, m)
			<-d.sendSlots
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}
	}
	if len(msgs) == 1 {
		run(msgs)
		return errors.Join(errs...)
	}
	groups := make(map[string][]domain.Message, len(msgs))
	var phones []string
	for _, m := range msgs {
		if _, ok := groups[m.Phone]; !ok {
			phones = append(phones, m.Phone)
		}
		groups[m.Phone] = append(groups[m.Phone], m)
	}
	var wg sync.WaitGroup
	for _, p := range phones[1:] {
		wg.Go(func() { run(groups[p]) })
	}
	run(groups[phones[0]])
	wg.Wait()
	return errors.Join(errs...)
}

// sendBatch is the Run of d.sends: one provider call for the claimed messages of concurrent sends
// that decide cleared to go.
func (d *Dispatcher) sendBatch(ctx context.Context, bp provider.BatchProvider, ms []domain.Message) []batch.Result[provider.Accepted] {
	// The call must end while every message's claim still holds (its lease end, NextAttempt) and
	// takes at most SendTimeout: time a message spent waiting for this call does not shorten it,
	// unless a lease is that close to its end.
	now := d.Clock.Now()
	budget := d.SendTimeout
	pms := make([]provider.Message, len(ms))
	for i, m := range ms {
		pms[i] = d.providerMessage(m)
		budget = min(budget, m.NextAttempt.Sub(now))
	}
	sendCtx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	start := time.Now()
	outcomes := bp.SendBatch(sendCtx, pms)
	d.Metrics.timedBatch(bp.Name(), time.Since(start), len(ms))
	out := make([]batch.Result[provider.Accepted], len(ms))
	for i := range out {
		if len(outcomes) != len(ms) { // a provider bug: nothing is known to be accepted
			out[i].Err = fmt.Errorf("%s: %d results for %d messages", bp.Name(), len(outcomes), len(ms))
		} else {
			out[i].Value, out[i].Err = outcomes[i].Accepted, outcomes[i].Err
		}
	}
	return out
}

// markSentBatch records the acceptances by provider name that arrived together (d.marks) in one
// statement.
func (d *Dispatcher) markSentBatch(name string) func(ctx context.Context, sent []domain.Message) []batch.Result[bool] {
	return func(ctx context.Context, sent []domain.Message) []batch.Result[bool] {
		return d.markSent(ctx, name, sent)
	}
}

func (d *Dispatcher) markSent(ctx context.Context, name string, sent []domain.Message) []batch.Result[bool] {
	out := make([]batch.Result[bool], len(sent))
	ids, err := d.Store.MarkSentAll(ctx, sent, name, d.Clock.Now(), d.KeepText)
	if err != nil {
		for i := range out {
			out[i].Err = err
		}
		return out
	}
	current := make(map[string]bool, len(ids))
	for _, id := range ids {
		current[id] = true
	}
	for i, m := range sent {
		out[i].Value = current[m.ID]
	}
	return out
}

// recordSent marks one accepted message SENT (and redacts it); the acceptances of concurrent sends
// share one statement.
func (d *Dispatcher) recordSent(ctx context.Context, m domain.Message) error {
	current, err := d.marks.Do(ctx, m)
	if err != nil {
		// The provider has it; the lease will bring it back and it goes out again with the same
		// message id, which the gateway dedups.
		return err
	}
	d.logSent(m, current)
	return nil
}

func (d *Dispatcher) logSent(m domain.Message, current bool) {
	if current {
		d.logMsg(zap.InfoLevel, "message sent", m)
	} else {
		d.logMsg(zap.WarnLevel, "message accepted but the claim was no longer current (superseded, or the lease ran out)", m)
	}
}

// logMsg logs about m; the fields are built only when the level is enabled.
func (d *Dispatcher) logMsg(lvl zapcore.Level, msg string, m domain.Message, fields ...zap.Field) {
	ce := d.Log.Check(lvl, msg)
	if ce == nil {
		return
	}
	ce.Write(append([]zap.Field{logging.MessageID(m.ID), logging.Phone(m.Phone), zap.String("provider", d.Provider.Name()),
		zap.Int("attempt", m.Attempts)}, fields...)...)
}

// handle decides about one claimed message, calls the provider and records the outcome.
func (d *Dispatcher) handle(ctx context.Context, m domain.Message) error {
	if len(d.routes) > 1 {
		return d.handleFailover(ctx, m)
	}
	reservedAt, ok, err := d.decide(ctx, m)
	if err != nil || !ok {
		return err
	}
	var (
		sendErr  error
		accepted provider.Accepted
	)
	if d.sends != nil {
		// Sends that arrive while BatchFlights calls are in flight go together in the next one.
		accepted, sendErr = d.sends.Do(ctx, m)
	} else {
		sendCtx, cancel := context.WithTimeout(ctx, d.SendTimeout)
		sendStart := time.Now()
		accepted, sendErr = d.Provider.Send(sendCtx, d.providerMessage(m))
		d.Metrics.timed(d.Provider.Name(), time.Since(sendStart))
		cancel()
	}
	if sendErr != nil {
		return d.recordFailed(ctx, m, reservedAt, sendErr)
	}
	d.Metrics.count(d.Provider.Name(), ResultSent)
	// The gateway's ids go with the SENT mark: its receipts name the message by them.
	m.ProviderIDs = accepted.ProviderIDs
	return d.recordSent(ctx, m)
}

func (d *Dispatcher) providerMessage(m domain.Message) provider.Message {
	return provider.Message{ID: m.ID, Phone: m.Phone, Text: m.Body, Sender: d.Sender,
		Values: domain.TemplateValues(m.Params, m.ExpireAt)}
}

// decide applies the claim's fence, expiry and the per-phone caps to one claimed message, reserving
// its cap slot when a cap is on, and carries out (records, counts, logs) every verdict but "send".
// It reports whether to call the provider for m now, and the decision's instant, by which
// SendFailed finds the reservation.
func (d *Dispatcher) decide(ctx context.Context, m domain.Message) (time.Time, bool, error) {
	if m.Body == "" {
		d.logMsg(zap.ErrorLevel, "queued message has no text; failing it", m)
		d.Metrics.count(d.Provider.Name(), ResultFailed)
		return time.Time{}, false, d.Store.Fail(ctx, m, domain.ErrorNothingToSend)
	}
	var (
		dec domain.Decision
		now time.Time // the decision's: SendFailed finds the reservation by it
	)
	if d.Caps.Off() {
		now = d.Clock.Now().Truncate(time.Microsecond) // as PostgreSQL stores it
		// No cap to count against, so no reservation: the claim itself is the fence. It still must
		// cover a provider call (the same rule Reserve applies under its locks), and an expired
		// message still fails.
		switch {
		case !domain.ClaimCurrent(m, m.Attempts, now, d.SendTimeout):
			dec = domain.Decision{Action: domain.ActionLostClaim}
		default:
			dec = domain.Decide(now, m.ExpireAt, d.Caps, nil)
			if dec.Action == domain.ActionFail {
				if err := d.Store.Fail(ctx, m, dec.Error); err != nil {
					return now, false, err
				}
			}
		}
	} else {
		var err error
		// The store reads its clock after its locks, so the decision's instant is its.
		if dec, now, err = d.Store.Reserve(ctx, m, d.Caps, d.SendTimeout); err != nil {
			return now, false, err
		}
	}
	switch dec.Action {
	case domain.ActionLostClaim:
		d.logMsg(zap.WarnLevel, "claim no longer current (lease ran out or another worker took the message); not sending", m)
		return now, false, nil
	case domain.ActionReschedule:
		d.logMsg(zap.InfoLevel, "per-phone cap reached; message waits", m, zap.Time("next_attempt", dec.At))
		d.Metrics.count(d.Provider.Name(), ResultCapped)
		return now, false, nil
	case domain.ActionFail:
		d.logMsg(zap.WarnLevel, "message failed", m, zap.String("reason", dec.Error))
		d.Metrics.count(d.Provider.Name(), ResultFailed)
		return now, false, nil
	}
	return now, true, nil
}

// recordFailed records a provider's refusal of m (reserved at reservedAt): the cap slot is given
// back and the message retried after a backoff, or FAILED once it has had MaxAttempts. The error's
// class (provider.ClassOf) decides the rest: a permanent refusal (an invalid number) FAILS the
// message at once; a per-number limit waits at least domain.PerNumberLimitWait; transient and
// account refusals take the usual backoff.
func (d *Dispatcher) recordFailed(ctx context.Context, m domain.Message, reservedAt time.Time, sendErr error) error {
	class := provider.ClassOf(sendErr)
	final := m.Attempts >= d.MaxAttempts || class == provider.Permanent
	wait := domain.Backoff(m.Attempts, d.Jitter())
	if class == provider.PerNumberLimit {
		wait = max(wait, domain.PerNumberLimitWait)
	}
	retryAt := d.Clock.Now().Add(wait)
	lastErr := truncate(sendErr.Error(), 500)
	if _, err := d.Store.SendFailed(ctx, m, reservedAt, d.Provider.Name(), lastErr, final, retryAt); err != nil {
		return errors.Join(sendErr, err)
	}
	if final {
		d.Metrics.count(d.Provider.Name(), ResultFailed)
		d.logMsg(zap.WarnLevel, "provider refused the message; giving up", m, zap.Error(sendErr), zap.Stringer("class", class))
	} else {
		d.Metrics.count(d.Provider.Name(), ResultRetried)
		d.logMsg(zap.WarnLevel, "provider refused the message; will retry", m, zap.Error(sendErr), zap.Stringer("class", class),
			zap.Time("next_attempt", retryAt))
	}
	return nil
}

// truncate cuts s to at most n bytes, at a rune boundary (the store keeps valid UTF-8).
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
