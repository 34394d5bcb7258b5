package dispatcher

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// handoffDepth is how many handed messages may wait per worker; beyond that, SendMessage stores
// messages unclaimed and the workers' claims pick them up.
const handoffDepth = 4

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
