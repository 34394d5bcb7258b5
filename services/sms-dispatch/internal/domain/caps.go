package domain

import (
	"slices"
	"time"
)

// Caps are the per-phone send limits against SMS-pumping fraud. A limit <= 0 disables that window.
type Caps struct {
	PerMinute, PerHour, PerDay int
}

// Off tells whether every window is disabled: then nothing is counted, and the dispatcher needs no
// reservation (no phone_sends row, no per-phone lock) before a send.
func (c Caps) Off() bool { return c.PerMinute <= 0 && c.PerHour <= 0 && c.PerDay <= 0 }

// DefaultCaps are the limits the big providers apply: 1 a minute, 5 an hour, 10 a day.
var DefaultCaps = Caps{PerMinute: 1, PerHour: 5, PerDay: 10}

// CapWindow is the longest window; sends older than this never matter.
const CapWindow = 24 * time.Hour

// NextAllowed returns the first instant >= now at which one more send to the phone stays within
// caps, given the instants of its earlier sends (any order; older ones are ignored). A send at t
// counts in a window w while t > now-w, so it stops counting at exactly t+w.
func (c Caps) NextAllowed(now time.Time, sends []time.Time) time.Time {
	sorted := slices.Clone(sends)
	slices.SortFunc(sorted, func(a, b time.Time) int { return a.Compare(b) })
	next := now
	for _, w := range []struct {
		limit int
		span  time.Duration
	}{{c.PerMinute, time.Minute}, {c.PerHour, time.Hour}, {c.PerDay, 24 * time.Hour}} {
		if w.limit <= 0 {
			continue
		}
		var in []time.Time
		for _, t := range sorted {
			if t.After(now.Add(-w.span)) {
				in = append(in, t)
			}
		}
		if len(in) < w.limit {
			continue
		}
		// The window frees a slot when its (len-limit)th oldest send leaves it.
		free := in[len(in)-w.limit].Add(w.span)
		if free.After(next) {
			next = free
		}
	}
	return next
}

// Action is what the dispatcher does with a claimed message.
type Action int

// The actions.
const (
	ActionSend       Action = iota + 1 // reserve the slot and call the provider now
	ActionReschedule                   // over the cap: try again at At
	ActionFail                         // give up with Error
	ActionLostClaim                    // the claim is no longer this worker's (see ClaimCurrent): do nothing
)

// Decision is the dispatcher's verdict for one claimed message.
type Decision struct {
	Action Action
	At     time.Time // ActionReschedule
	Error  string    // ActionFail: "expired" or "rate limited"
}

// Decide applies expiry and the caps: an expired message fails; one over the cap waits for the next
// allowed instant if that comes before its expiry, else fails as rate limited.
func Decide(now, expireAt time.Time, caps Caps, sends []time.Time) Decision {
	if !expireAt.IsZero() && !now.Before(expireAt) {
		return Decision{Action: ActionFail, Error: ErrorExpired}
	}
	next := caps.NextAllowed(now, sends)
	if !next.After(now) {
		return Decision{Action: ActionSend}
	}
	if expireAt.IsZero() || next.Before(expireAt) {
		return Decision{Action: ActionReschedule, At: next}
	}
	return Decision{Action: ActionFail, Error: ErrorRateLimited}
}

// PerNumberLimitWait is the least wait before a message the provider refused under its per-number
// flow control (provider.PerNumberLimit) goes again: such limits count per minute or longer.
const PerNumberLimitWait = time.Minute

// Backoff is the wait after a provider failure on attempt number attempts (1-based): 1s doubling
// to at most 60s, plus up to 20% jitter (jitter in [0,1)) so that retries after an outage spread out.
func Backoff(attempts int, jitter float64) time.Duration {
	d := time.Second
	for i := 1; i < attempts && d < time.Minute; i++ {
		d *= 2
	}
	d = min(d, time.Minute)
	return d + time.Duration(jitter*0.2*float64(d))
}
