package dispatcher

import (
	"sync"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
)

// BreakerState is a provider's circuit breaker state; its value is the icp_sms_breaker_state gauge.
type BreakerState int

// The states: closed (calls go), open (calls skip the provider), half-open (one probe at a time).
const (
	BreakerClosed   BreakerState = 0
	BreakerHalfOpen BreakerState = 1
	BreakerOpen     BreakerState = 2
)

func (s BreakerState) String() string {
	switch s {
	case BreakerOpen:
		return "open"
	case BreakerHalfOpen:
		return "half-open"
	}
	return "closed"
}

// Breaker defaults.
const (
	DefaultBreakerFailures = 5
	DefaultBreakerCooldown = 30 * time.Second
)

// breaker is one provider's circuit breaker, on the dispatcher's clock (so tests need no sleeps;
// the libraries at hand read the wall clock). Failures consecutive failures (transient or account
// refusals) open it; after Cooldown one probe goes (half-open): its success closes the breaker, its
// failure opens it for another Cooldown. A per-number limit or a permanent refusal is an answer of a
// healthy gateway: it counts as success.
type breaker struct {
	failures int
	cooldown time.Duration
	clock    clock.Clock
	onState  func(BreakerState)

	mu       sync.Mutex
	state    BreakerState
	fails    int
	openedAt time.Time
	probing  bool
}

// allow reports whether a call may go now; a true answer in half-open is the probe, and the caller
// must report its outcome (done).
func (b *breaker) allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch b.state {
	case BreakerOpen:
		if b.clock.Now().Sub(b.openedAt) < b.cooldown {
			return false
		}
		b.set(BreakerHalfOpen)
		b.probing = true
		return true
	case BreakerHalfOpen:
		if b.probing {
			return false
		}
		b.probing = true
	}
	return true
}

// done records the outcome of an allowed call.
func (b *breaker) done(ok bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case ok:
		b.fails, b.probing = 0, false
		b.set(BreakerClosed)
	case b.state == BreakerHalfOpen:
		b.probing = false
		b.open()
	default:
		if b.fails++; b.fails >= b.failures && b.state == BreakerClosed {
			b.open()
		}
	}
}

// release ends an allowed call that never reached the provider (a stale claim): no outcome.
func (b *breaker) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state == BreakerHalfOpen {
		b.probing = false
	}
}

func (b *breaker) open() {
	b.openedAt, b.fails = b.clock.Now(), 0
	b.set(BreakerOpen)
}

func (b *breaker) set(s BreakerState) {
	if b.state != s {
		b.state = s
		if b.onState != nil {
			b.onState(s)
		}
	}
}

// State is the breaker's state now (open until the cooldown has passed and a probe went).
func (b *breaker) State() BreakerState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}
