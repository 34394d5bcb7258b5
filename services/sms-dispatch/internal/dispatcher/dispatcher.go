// Package dispatcher delivers queued messages. N workers (in any number of replicas) claim due
// messages with FOR UPDATE SKIP LOCKED and a lease, check expiry and the per-phone caps, reserve the
// cap slot, call the provider, and record the outcome. A message is SENT once; only a crash between
// the provider's acceptance and the SENT update makes it go out again, after its lease, with the same
// message id (the webhook's Idempotency-Key), which the gateway dedups: at least once, never twice
// in normal operation.
package dispatcher

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/logging"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// Store is what the dispatcher needs from storage (implemented by store.Store and memstore.Store).
// Every call after Claim is fenced by the claimed message's Attempts.
type Store interface {
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Message, error)
	Reserve(ctx context.Context, m domain.Message, now time.Time, caps domain.Caps, sendTimeout time.Duration) (domain.Decision, error)
	MarkSent(ctx context.Context, m domain.Message, provider string, now time.Time, keepText bool) (bool, error)
	SendFailed(ctx context.Context, m domain.Message, reservedAt time.Time, provider, lastErr string, final bool, retryAt time.Time) (bool, error)
	Fail(ctx context.Context, m domain.Message, lastErr string) error
}

// Dispatcher runs the workers.
type Dispatcher struct {
	Store    Store
	Provider provider.Provider
	Clock    clock.Clock
	Log      *zap.Logger
	Caps     domain.Caps
	// Sender is the sender number handed to the provider (12381).
	Sender string
	// MaxAttempts is how many provider calls a message gets before it FAILS.
	MaxAttempts int
	// Workers is how many messages this process sends at once.
	Workers int
	// Lease hides a claimed message from other workers; it must exceed SendTimeout.
	Lease time.Duration
	// SendTimeout bounds one provider call.
	SendTimeout time.Duration
	// Poll is the idle wait when nothing woke the workers.
	Poll time.Duration
	// KeepText keeps the text of sent messages (development mode, console provider only) so that the
	// CLI and tests can read codes through GetMessage; otherwise it is wiped on acceptance.
	KeepText bool
	// Jitter returns a number in [0,1) that spreads retries; math/rand by default.
	Jitter func() float64
	// Metrics counts the outcomes; nil counts nothing.
	Metrics *Metrics

	once sync.Once
	wake chan struct{}
}

func (d *Dispatcher) init() {
	d.once.Do(func() {
		if d.Workers <= 0 {
			d.Workers = 1
		}
		if d.MaxAttempts <= 0 {
			d.MaxAttempts = 10
		}
		if d.SendTimeout <= 0 {
			d.SendTimeout = 10 * time.Second
		}
		if d.Lease <= 0 {
			d.Lease = 3 * d.SendTimeout
		}
		if d.Poll <= 0 {
			d.Poll = 500 * time.Millisecond
		}
		if d.Jitter == nil {
			d.Jitter = rand.Float64
		}
		d.wake = make(chan struct{}, d.Workers)
	})
}

// Wake makes idle workers look for messages now; SendMessage calls it after storing a message.
func (d *Dispatcher) Wake() {
	d.init()
	for range d.Workers {
		select {
		case d.wake <- struct{}{}:
		default:
			return
		}
	}
}

// Run starts the workers and returns when ctx ends.
func (d *Dispatcher) Run(ctx context.Context) error {
	d.init()
	var wg sync.WaitGroup
	for range d.Workers {
		wg.Go(func() { d.work(ctx) })
	}
	wg.Wait()
	return ctx.Err()
}

func (d *Dispatcher) work(ctx context.Context) {
	for ctx.Err() == nil {
		did, err := d.RunOnce(ctx)
		if err != nil && ctx.Err() == nil {
			d.Log.Warn("dispatch failed", zap.Error(err))
		}
		if did && err == nil {
			continue // more may be due
		}
		select {
		case <-ctx.Done():
		case <-d.wake:
		case <-time.After(d.Poll):
		}
	}
}

// RunOnce claims one due message and handles it; it reports whether there was one.
func (d *Dispatcher) RunOnce(ctx context.Context) (bool, error) {
	d.init()
	msgs, err := d.Store.Claim(ctx, d.Clock.Now(), d.Lease, 1)
	if err != nil || len(msgs) == 0 {
		return false, err
	}
	// The outcome must be recorded even while shutting down, or the message waits for its lease.
	return true, d.handle(context.WithoutCancel(ctx), msgs[0])
}

// Drain handles due messages until none is left; for tests and tools.
func (d *Dispatcher) Drain(ctx context.Context) (int, error) {
	n := 0
	for {
		did, err := d.RunOnce(ctx)
		if err != nil || !did {
			return n, err
		}
		n++
	}
}

func (d *Dispatcher) handle(ctx context.Context, m domain.Message) error {
	log := d.Log.With(logging.MessageID(m.ID), logging.Phone(m.Phone), zap.String("provider", d.Provider.Name()),
		zap.Int("attempt", m.Attempts))
	if m.Body == "" {
		log.Error("queued message has no text; failing it")
		d.Metrics.count(d.Provider.Name(), ResultFailed)
		return d.Store.Fail(ctx, m, domain.ErrorNothingToSend)
	}
	// Microseconds, as PostgreSQL stores them: SendFailed finds the reservation by this instant.
	now := d.Clock.Now().Truncate(time.Microsecond)
	dec, err := d.Store.Reserve(ctx, m, now, d.Caps, d.SendTimeout)
	if err != nil {
		return err
	}
	switch dec.Action {
	case domain.ActionLostClaim:
		log.Warn("claim no longer current (lease ran out or another worker took the message); not sending")
		return nil
	case domain.ActionReschedule:
		log.Info("per-phone cap reached; message waits", zap.Time("next_attempt", dec.At))
		d.Metrics.count(d.Provider.Name(), ResultCapped)
		return nil
	case domain.ActionFail:
		log.Warn("message failed", zap.String("reason", dec.Error))
		d.Metrics.count(d.Provider.Name(), ResultFailed)
		return nil
	}

	sendCtx, cancel := context.WithTimeout(ctx, d.SendTimeout)
	sendStart := time.Now()
	sendErr := d.Provider.Send(sendCtx, provider.Message{ID: m.ID, Phone: m.Phone, Text: m.Body, Sender: d.Sender})
	d.Metrics.timed(d.Provider.Name(), time.Since(sendStart))
	cancel()
	if sendErr == nil {
		d.Metrics.count(d.Provider.Name(), ResultSent)
		ok, err := d.Store.MarkSent(ctx, m, d.Provider.Name(), d.Clock.Now(), d.KeepText)
		if err != nil {
			// The provider has it; the lease will bring it back and it goes out again with the
			// same message id, which the gateway dedups.
			return err
		}
		if ok {
			log.Info("message sent")
		} else {
			log.Warn("message accepted but the claim was no longer current (superseded, or the lease ran out)")
		}
		return nil
	}

	final := m.Attempts >= d.MaxAttempts
	retryAt := d.Clock.Now().Add(domain.Backoff(m.Attempts, d.Jitter()))
	lastErr := truncate(sendErr.Error(), 500)
	if _, err := d.Store.SendFailed(ctx, m, now, d.Provider.Name(), lastErr, final, retryAt); err != nil {
		return errors.Join(sendErr, err)
	}
	if final {
		d.Metrics.count(d.Provider.Name(), ResultFailed)
		log.Warn("provider refused the message; giving up", zap.Error(sendErr))
	} else {
		d.Metrics.count(d.Provider.Name(), ResultRetried)
		log.Warn("provider refused the message; will retry", zap.Error(sendErr), zap.Time("next_attempt", retryAt))
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
