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
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// Store is what the dispatcher needs from storage (implemented by store.Store and memstore.Store).
// Every call after Claim is fenced by the claimed message's Attempts. Reserve, the one decision taken
// under the store's locks, reads the store's clock after them and returns the instant it decided at;
// the other instants are the dispatcher's: when its claim looks for due messages (no lock is waited
// for: SKIP LOCKED), when the provider accepted, when a retry is due.
type Store interface {
	Claim(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]domain.Message, error)
	Reserve(ctx context.Context, m domain.Message, caps domain.Caps, sendTimeout time.Duration) (d domain.Decision, at time.Time, err error)
	MarkSent(ctx context.Context, m domain.Message, provider string, now time.Time, keepText bool) (bool, error)
	// MarkSentAll is MarkSent for several claims in one statement; it returns the ids whose claim
	// was still current (the others were left alone).
	MarkSentAll(ctx context.Context, ms []domain.Message, provider string, now time.Time, keepText bool) ([]string, error)
	SendFailed(ctx context.Context, m domain.Message, reservedAt time.Time, provider, lastErr string, final bool, retryAt time.Time) (bool, error)
	Fail(ctx context.Context, m domain.Message, lastErr string) error
	// MarkAtRisk makes up to limit messages SENT at or before sentBefore without a receipt AT_RISK
	// (writing their reports), or queues the redeliverable ones again (domain.RedeliverNow), and
	// returns how many of each; now dates the reports and the re-queues.
	MarkAtRisk(ctx context.Context, now, sentBefore time.Time, limit int) (domain.Swept, error)
	// Hand records durably, under the claim m, that m goes to provider, before the call (failover
	// only). A provider that had m before gets it again only in a second round (again) when it
	// refused m, or when it is idempotent and did not refuse m (or again). current is false for a
	// stale claim; handed says whether to call. Refused records that provider answered m with a
	// refusal (it does not have m); stay forgets the hand-off (m stays with provider, as if new).
	Hand(ctx context.Context, m domain.Message, provider string, now time.Time, again, idempotent bool) (current, handed bool, err error)
	Refused(ctx context.Context, m domain.Message, provider string, stay bool) error
}

// DefaultBatch is how many messages one worker claims at most in one statement.
const DefaultBatch = 16

// Dispatcher runs the workers.
type Dispatcher struct {
	Store Store
	// Provider is the one provider; Providers, when it holds more than one, is the failover order
	// instead (failover.go), Provider then being its first.
	Provider  provider.Provider
	Providers []provider.Provider
	// BreakerFailures consecutive transient or account refusals open a provider's breaker under
	// failover (DefaultBreakerFailures when 0); it half-opens after BreakerCooldown
	// (DefaultBreakerCooldown when 0).
	BreakerFailures int
	BreakerCooldown time.Duration
	Clock           clock.Clock
	Log             *zap.Logger
	Caps            domain.Caps
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
	// AtRiskAfter is how long a SENT message waits for its receipt before it is AT_RISK
	// (domain.DefaultAtRiskAfter when 0); Sweep is how often Run looks for them (a minute when 0).
	AtRiskAfter time.Duration
	Sweep       time.Duration

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
	sends *batch.Group[domain.Message, provider.Accepted]
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
	// routes are the failover providers in order (more than one), each with its breaker.
	routes []*route
}

func (d *Dispatcher) init() {
	d.once.Do(func() {
		if d.Provider == nil && len(d.Providers) > 0 {
			d.Provider = d.Providers[0]
		}
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
		if d.AtRiskAfter <= 0 {
			d.AtRiskAfter = domain.DefaultAtRiskAfter
		}
		if d.Sweep <= 0 {
			d.Sweep = time.Minute
		}
		d.signal = make(chan struct{}, d.Workers)
		d.claimSlots = make(chan struct{}, min(2, d.Workers))
		d.sendSlots = make(chan struct{}, d.Workers)
		if bp, ok := d.Provider.(provider.BatchProvider); ok {
			d.sends = &batch.Group[domain.Message, provider.Accepted]{Run: func(ctx context.Context, ms []domain.Message) []batch.Result[provider.Accepted] {
				return d.sendBatch(ctx, bp, ms)
			}, MaxBatch: max(bp.MaxBatch(), 1), Flights: max(d.BatchFlights, 1)}
		}
		d.handed = make(chan domain.Message, d.Workers*handoffDepth)
		d.marks = &batch.Group[domain.Message, bool]{Run: d.markSentBatch(d.Provider.Name()), MaxBatch: 256}
		d.initRoutes()
	})
}

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
	wg.Go(func() { d.sweepLoop(ctx) })
	wg.Wait()
	d.drainHanded()
	return ctx.Err()
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

// atRiskBatch is how many messages one sweep statement marks at most.
const atRiskBatch = 1000

// SweepAtRisk marks the messages whose receipt is overdue at the dispatcher's clock AT_RISK, or
// queues them again for a redelivery (and wakes the workers for them), a batch statement at a time,
// and returns how many of each.
func (d *Dispatcher) SweepAtRisk(ctx context.Context) (domain.Swept, error) {
	d.init()
	now := d.Clock.Now()
	var total domain.Swept
	for {
		n, err := d.Store.MarkAtRisk(ctx, now, now.Add(-d.AtRiskAfter), atRiskBatch)
		total.AtRisk += n.AtRisk
		total.Redelivered += n.Redelivered
		d.Metrics.atRisk(d.Provider.Name(), n)
		for range n.Redelivered {
			d.Wake()
		}
		if err != nil || n.Total() < atRiskBatch {
			return total, err
		}
	}
}

func (d *Dispatcher) sweepLoop(ctx context.Context) {
	t := time.NewTicker(d.Sweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if n, err := d.SweepAtRisk(ctx); err != nil && ctx.Err() == nil {
				d.Log.Warn("at-risk sweep failed", zap.Error(err))
			} else if n.Total() > 0 {
				d.Log.Info("messages without a receipt in time are at risk, or redelivered", zap.Int("at_risk", n.AtRisk),
					zap.Int("redelivered", n.Redelivered))
			}
		}
	}
}
