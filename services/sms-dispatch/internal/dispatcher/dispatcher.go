// Package dispatcher delivers queued messages. SendMessage hands each new message straight to a
// local worker, stored already claimed (Reserve/Handoff); the workers' claims (FOR UPDATE SKIP
// LOCKED and a lease, shared by any number of replicas) pick up the rest: retries, cap waits,
// messages stored while the local queue was full, and those of a process that died. A worker checks
// expiry and the per-phone caps, reserves the cap slot (only when a cap is on; otherwise the claim's
// lease alone fences the send), calls the provider, and records the outcome (the acceptances of
// concurrent sends in one statement). With a batch provider (provider.BatchProvider) the provider
// calls of concurrent sends are coalesced the same way, into one call (BatchFlights).
// A message is SENT once; only a crash between the provider's acceptance and the SENT update makes it
// go out again, after its lease, with the same message id (the webhook's Idempotency-Key, or the
// message_id of a batch item), which the gateway dedups: at least once, never twice in normal
// operation.
package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/icpverify/icpverify/pkg/batch"
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
	// MarkSentAll is MarkSent for several claims in one statement; it returns the ids whose claim
	// was still current (the others were left alone).
	MarkSentAll(ctx context.Context, ms []domain.Message, provider string, now time.Time, keepText bool) ([]string, error)
	SendFailed(ctx context.Context, m domain.Message, reservedAt time.Time, provider, lastErr string, final bool, retryAt time.Time) (bool, error)
	Fail(ctx context.Context, m domain.Message, lastErr string) error
}

// DefaultBatch is how many messages one worker claims at most in one statement.
const DefaultBatch = 16

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
	// Workers is how many messages this process sends at once (and how many claim loops it runs).
	Workers int
	// BatchFlights, with a batch provider, is how many batch calls may be in flight at once (1 when
	// 0): the sends that arrive meanwhile wait and go together in the next call (group commit), so
	// a lone message goes at once and calls carry more messages as the load grows.
	BatchFlights int
	// Batch is how many due messages one claim takes at most (DefaultBatch when 0). A woken worker
	// claims as many as were stored since the last claim, up to Batch; a poll claims up to Batch.
	Batch int
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
	// pending counts messages stored (Wake) that no claim has accounted for yet: a counting
	// semaphore. signal wakes one idle worker per Wake; a worker that finds pending at 0 sleeps.
	pending atomic.Int64
	signal  chan struct{}
	// claimSlots bounds the claims in flight; while they run, Wakes accumulate in pending, so the
	// next claim takes them all in one statement (batches grow with the load, no added latency).
	claimSlots chan struct{}
	// sendSlots bounds the provider calls in flight to Workers. A message sent on its own holds one
	// from its decision to its recorded outcome; with a batch provider, a chunk of messages does.
	sendSlots chan struct{}
	// sends coalesces the provider calls of concurrent sends into one batch call when the provider
	// takes lists (provider.BatchProvider); nil otherwise.
	sends *batch.Group[domain.Message, struct{}]
	// lastClaim (UnixNano of the real clock) lets a poll skip its claim when another one just ran.
	lastClaim atomic.Int64
	// idle counts workers parked waiting for a Wake or their poll timer.
	idle atomic.Int64
	// marks coalesces the SENT updates of concurrent sends into one statement.
	marks *batch.Group[domain.Message, bool]

	// handed carries messages SendMessage stored already claimed (Reserve/Handoff) straight to a
	// worker: no claim statement, no wait. reserved counts the slots promised and not yet resolved.
	handed   chan domain.Message
	reserved atomic.Int64
	// closed is set when Run ends: Reserve refuses from then on.
	closed atomic.Bool
}

// handoffDepth is how many handed messages may wait per worker; beyond that, SendMessage stores
// messages unclaimed and the workers' claims pick them up.
const handoffDepth = 4

func (d *Dispatcher) init() {
	d.once.Do(func() {
		if d.Workers <= 0 {
			d.Workers = 1
		}
		if d.Batch <= 0 {
			d.Batch = DefaultBatch
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
		d.signal = make(chan struct{}, d.Workers)
		d.claimSlots = make(chan struct{}, min(2, d.Workers))
		d.sendSlots = make(chan struct{}, d.Workers)
		if bp, ok := d.Provider.(provider.BatchProvider); ok {
			d.sends = &batch.Group[domain.Message, struct{}]{Run: func(ctx context.Context, ms []domain.Message) []batch.Result[struct{}] {
				return d.sendBatch(ctx, bp, ms)
			}, MaxBatch: max(bp.MaxBatch(), 1), Flights: max(d.BatchFlights, 1)}
		}
		d.handed = make(chan domain.Message, d.Workers*handoffDepth)
		d.marks = &batch.Group[domain.Message, bool]{Run: d.markSentBatch, MaxBatch: 256}
	})
}

// Reserve offers to take a message straight from SendMessage. When it answers ok, the caller
// stores the message already claimed by this process (attempt 1, hidden until leaseUntil) and then
// calls Handoff with the stored message, or Release if it was not stored as new and QUEUED. When
// it answers false (the queue is full, or the dispatcher stopped), the caller stores the message
// unclaimed and calls Wake. A process that dies holding a handed message loses nothing: the lease
// runs out and a claim takes it, as for a crash after any claim.
func (d *Dispatcher) Reserve(now time.Time) (leaseUntil time.Time, ok bool) {
	d.init()
	// Count first, then look at closed: drainHanded sets closed and then waits for the count, so
	// it either sees this reservation or this call sees closed.
	if d.reserved.Add(1) > int64(cap(d.handed)) || d.closed.Load() {
		d.reserved.Add(-1)
		return time.Time{}, false
	}
	return now.Add(d.Lease), true
}

// Handoff gives a worker the stored, claimed message m of an earlier Reserve.
func (d *Dispatcher) Handoff(m domain.Message) {
	d.handed <- m // never blocks: Reserve kept a slot
}

// Release gives back the slot of a Reserve whose message was not stored as new.
func (d *Dispatcher) Release() { d.reserved.Add(-1) }

// Wake tells the workers that one more message was stored; SendMessage calls it after storing a
// message. It wakes at most one idle worker.
func (d *Dispatcher) Wake() {
	d.init()
	d.pending.Add(1)
	select {
	case d.signal <- struct{}{}:
	default: // every worker already has a wake-up waiting
	}
}

// takeTokens takes up to n of the pending Wakes.
func (d *Dispatcher) takeTokens(n int) int {
	for {
		p := d.pending.Load()
		if p <= 0 {
			return 0
		}
		k := min(p, int64(n))
		if d.pending.CompareAndSwap(p, p-k) {
			return int(k)
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
	d.drainHanded()
	return ctx.Err()
}

// drainHanded sends what SendMessage handed over until every Reserve made before the stop is
// resolved (bounded by a lease: a message left over comes back through a claim).
func (d *Dispatcher) drainHanded() {
	d.closed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), d.Lease)
	defer cancel()
	for d.reserved.Load() > 0 {
		select {
		case m := <-d.handed:
			d.handleHanded(ctx, m)
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Millisecond): // a Reserve still between Create and Release
		}
	}
}

// handleHanded handles m and whatever else was handed over meanwhile (up to Batch) as one batch.
func (d *Dispatcher) handleHanded(ctx context.Context, m domain.Message) {
	msgs := []domain.Message{m}
	for len(msgs) < d.Batch {
		select {
		case m := <-d.handed:
			msgs = append(msgs, m)
			continue
		default:
		}
		break
	}
	d.reserved.Add(-int64(len(msgs)))
	if err := d.handleBatch(context.WithoutCancel(ctx), msgs); err != nil && ctx.Err() == nil {
		d.Log.Warn("dispatch failed", zap.Error(err))
	}
}

func (d *Dispatcher) work(ctx context.Context) {
	poll := true // look for a backlog at start
	timer := time.NewTimer(d.Poll)
	defer timer.Stop()
	for ctx.Err() == nil {
		// Handed messages first: they were stored claimed, and under load the Wakes of the messages
		// that found the local queue full would otherwise keep every worker claiming.
		select {
		case m := <-d.handed:
			d.handleHanded(ctx, m)
			continue
		default:
		}
		if !poll && d.pending.Load() <= 0 {
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
			timer.Reset(d.Poll)
			d.idle.Add(1)
			select {
			case <-ctx.Done():
				d.idle.Add(-1)
				return
			case m := <-d.handed:
				d.idle.Add(-1)
				d.handleHanded(ctx, m)
				continue
			case <-d.signal:
				d.idle.Add(-1)
			case <-timer.C:
				d.idle.Add(-1)
				// Retries and cap waits become due without a Wake. One claim per Poll in the process
				// is enough to find them: skip when another worker claimed recently.
				poll = time.Since(time.Unix(0, d.lastClaim.Load())) >= d.Poll
			}
		}
		full, err := d.claimAndHandle(ctx, poll)
		if err != nil && ctx.Err() == nil {
			d.Log.Warn("dispatch failed", zap.Error(err))
		}
		// A full batch means more may be due: claim again at once.
		poll = full && err == nil
	}
}

// claimAndHandle takes the pending Wakes (up to Batch) and claims that many messages, or Batch when
// poll; it handles them and reports whether the claim came back full.
func (d *Dispatcher) claimAndHandle(ctx context.Context, poll bool) (bool, error) {
	select {
	case d.claimSlots <- struct{}{}:
	case <-ctx.Done():
		return false, ctx.Err()
	}
	limit := d.takeTokens(d.Batch)
	if poll {
		limit = d.Batch
	}
	if limit == 0 { // another worker took the Wakes
		<-d.claimSlots
		return false, nil
	}
	d.lastClaim.Store(time.Now().UnixNano())
	msgs, err := d.Store.Claim(ctx, d.Clock.Now(), d.Lease, limit)
	<-d.claimSlots
	if err != nil || len(msgs) == 0 {
		return false, err
	}
	// The outcome must be recorded even while shutting down, or the message waits for its lease.
	return len(msgs) == limit, d.handleBatch(context.WithoutCancel(ctx), msgs)
}

// RunOnce claims up to Batch due messages and handles them; it reports whether there was one.
func (d *Dispatcher) RunOnce(ctx context.Context) (bool, error) {
	n, err := d.runOnce(ctx)
	return n > 0, err
}

func (d *Dispatcher) runOnce(ctx context.Context) (int, error) {
	d.init()
	msgs, err := d.Store.Claim(ctx, d.Clock.Now(), d.Lease, d.Batch)
	if err != nil || len(msgs) == 0 {
		return 0, err
	}
	return len(msgs), d.handleBatch(context.WithoutCancel(ctx), msgs)
}

// Drain handles due messages until none is left; for tests and tools. It returns how many it handled.
func (d *Dispatcher) Drain(ctx context.Context) (int, error) {
	n := 0
	for {
		k, err := d.runOnce(ctx)
		n += k
		if err != nil || k == 0 {
			return n, err
		}
	}
}

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
func (d *Dispatcher) sendBatch(ctx context.Context, bp provider.BatchProvider, ms []domain.Message) []batch.Result[struct{}] {
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
	errs := bp.SendBatch(sendCtx, pms)
	d.Metrics.timedBatch(d.Provider.Name(), time.Since(start), len(ms))
	out := make([]batch.Result[struct{}], len(ms))
	for i := range out {
		if len(errs) != len(ms) { // a provider bug: nothing is known to be accepted
			out[i].Err = fmt.Errorf("%s: %d results for %d messages", d.Provider.Name(), len(errs), len(ms))
		} else {
			out[i].Err = errs[i]
		}
	}
	return out
}

// markSentBatch records the acceptances that arrived together (d.marks) in one statement.
func (d *Dispatcher) markSentBatch(ctx context.Context, sent []domain.Message) []batch.Result[bool] {
	out := make([]batch.Result[bool], len(sent))
	ids, err := d.Store.MarkSentAll(ctx, sent, d.Provider.Name(), d.Clock.Now(), d.KeepText)
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
	reservedAt, ok, err := d.decide(ctx, m)
	if err != nil || !ok {
		return err
	}
	var sendErr error
	if d.sends != nil {
		// Sends that arrive while BatchFlights calls are in flight go together in the next one.
		_, sendErr = d.sends.Do(ctx, m)
	} else {
		sendCtx, cancel := context.WithTimeout(ctx, d.SendTimeout)
		sendStart := time.Now()
		sendErr = d.Provider.Send(sendCtx, d.providerMessage(m))
		d.Metrics.timed(d.Provider.Name(), time.Since(sendStart))
		cancel()
	}
	if sendErr != nil {
		return d.recordFailed(ctx, m, reservedAt, sendErr)
	}
	d.Metrics.count(d.Provider.Name(), ResultSent)
	return d.recordSent(ctx, m)
}

func (d *Dispatcher) providerMessage(m domain.Message) provider.Message {
	return provider.Message{ID: m.ID, Phone: m.Phone, Text: m.Body, Sender: d.Sender}
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
	// Microseconds, as PostgreSQL stores them: SendFailed finds the reservation by this instant.
	now := d.Clock.Now().Truncate(time.Microsecond)
	var dec domain.Decision
	if d.Caps.Off() {
		// No cap to count against, so no reservation: the claim itself is the fence. It still must
		// cover a provider call (the same rule Reserve applies in the database), and an expired
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
		if dec, err = d.Store.Reserve(ctx, m, now, d.Caps, d.SendTimeout); err != nil {
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
// back and the message retried after a backoff, or FAILED once it has had MaxAttempts.
func (d *Dispatcher) recordFailed(ctx context.Context, m domain.Message, reservedAt time.Time, sendErr error) error {
	final := m.Attempts >= d.MaxAttempts
	retryAt := d.Clock.Now().Add(domain.Backoff(m.Attempts, d.Jitter()))
	lastErr := truncate(sendErr.Error(), 500)
	if _, err := d.Store.SendFailed(ctx, m, reservedAt, d.Provider.Name(), lastErr, final, retryAt); err != nil {
		return errors.Join(sendErr, err)
	}
	if final {
		d.Metrics.count(d.Provider.Name(), ResultFailed)
		d.logMsg(zap.WarnLevel, "provider refused the message; giving up", m, zap.Error(sendErr))
	} else {
		d.Metrics.count(d.Provider.Name(), ResultRetried)
		d.logMsg(zap.WarnLevel, "provider refused the message; will retry", m, zap.Error(sendErr), zap.Time("next_attempt", retryAt))
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
