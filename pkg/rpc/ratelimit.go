package rpc

import (
	"math"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/icpverify/icpverify/pkg/errs"
)

// RateLimit limits one method per caller with a token bucket: Rate calls per second on average,
// Burst at once. Rate 0 switches the limit off.
type RateLimit struct {
	Method string // full method name, e.g. /icp.verification.v1.VerificationService/Verify
	Rate   float64
	Burst  int
	// PerTenant keys the buckets by the caller's tenant instead of its identity: every API key and JWT
	// subject of one tenant shares the tenant's bucket (security review L5: each JWT subject had its
	// own). Callers without a credential (--portal-auth=none: all of the development tenant) and
	// internal callers keep one bucket per identity.
	PerTenant bool
}

// key is the bucket of c under l.
func (l RateLimit) key(c Caller) string {
	if l.PerTenant && c.Tenant != "" && !strings.HasPrefix(c.ID, "ip:") {
		return "tenant:" + c.Tenant
	}
	return c.ID
}

// maxBuckets bounds the memory of one limiter: past it, buckets are dropped (idle ones first).
const maxBuckets = 100_000

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// limiter is a token bucket per caller. A bucket idle long enough to be full again behaves exactly
// like a new one, so dropping it loses nothing: that is how memory stays bounded.
type limiter struct {
	RateLimit
	rate      rate.Limit
	burst     int
	idle      time.Duration // time after which an unused bucket is full again
	mu        sync.Mutex
	buckets   map[string]*bucket
	lastSweep time.Time
}

func newLimiter(l RateLimit) *limiter {
	burst := max(l.Burst, 1)
	idle := time.Duration(math.Ceil(float64(burst)/l.Rate*float64(time.Second))) + time.Second
	return &limiter{RateLimit: l, rate: rate.Limit(l.Rate), burst: burst, idle: idle, buckets: map[string]*bucket{}}
}

// allow takes a token for key, or returns a ResourceExhausted error with the delay until one is free.
func (l *limiter) allow(key string, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			for k := range l.buckets { // still full after the sweep: drop an arbitrary bucket
				delete(l.buckets, k)
				break
			}
		}
		b = &bucket{lim: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if !r.OK() {
		return errs.Exhausted(ReasonRateLimited, time.Second, "too many requests, retry later")
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		d = (d + time.Millisecond - 1).Truncate(time.Millisecond)
		return errs.Exhausted(ReasonRateLimited, d, "too many requests, retry after %s", d)
	}
	return nil
}

// sweep drops the buckets idle long enough to be full again, at most once a second.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Second {
		return
	}
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.seen) >= l.idle {
			delete(l.buckets, k)
		}
	}
}
