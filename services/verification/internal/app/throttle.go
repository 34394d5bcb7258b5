package app

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// MismatchThrottle keeps, per caller (rpc.Caller.ID: the API key for API-key portals, the JWT
// subject, or the IP without portal auth), the phones its checks mismatched on in the last hour and
// refuses a check of a further phone past the limit (domain.CheckMismatchedPhones), before the check
// can count anything. It is in memory, per process, on purpose: it is friction against locking
// strangers' verifications, not the bound on guessing (the per-phone budget is, in the database), so
// it needs no round trip on Verify's hot path; with R replicas a caller spread over all of them gets
// at most R times the limit. Phones are kept as keyed fingerprints.
type MismatchThrottle struct {
	clock  clock.Clock
	hasher *domain.Hasher
	max    int

	mu      sync.Mutex
	callers map[string]map[string]time.Time // caller id -> phone fingerprint -> last mismatch
	writes  int
}

// NewMismatchThrottle allows each caller mismatches on at most max distinct phones an hour; 0: no limit.
func NewMismatchThrottle(clk clock.Clock, hasher *domain.Hasher, max int) *MismatchThrottle {
	return &MismatchThrottle{clock: clk, hasher: hasher, max: max, callers: map[string]map[string]time.Time{}}
}

// check refuses the caller of ctx a check of phone past its limit.
func (t *MismatchThrottle) check(ctx context.Context, phone string) error {
	if t == nil || t.max <= 0 {
		return nil
	}
	key := t.hasher.Fingerprint("mismatch-phone", phone)
	t.mu.Lock()
	defer t.mu.Unlock()
	return domain.CheckMismatchedPhones(t.clock.Now(), t.callers[rpc.CallerFrom(ctx).ID], key, t.max)
}

// record notes a committed mismatch of the caller of ctx on phone.
func (t *MismatchThrottle) record(ctx context.Context, phone string) {
	if t == nil || t.max <= 0 {
		return
	}
	key := t.hasher.Fingerprint("mismatch-phone", phone)
	now := t.clock.Now()
	id := rpc.CallerFrom(ctx).ID
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := t.callers[id]
	if seen == nil {
		seen = map[string]time.Time{}
		t.callers[id] = seen
	}
	seen[key] = now
	t.writes++
	if t.writes%1024 == 0 { // now and then, forget what is past the window, callers included
		for cid, s := range t.callers {
			maps.DeleteFunc(s, func(_ string, at time.Time) bool { return now.Sub(at) >= domain.MismatchWindow })
			if len(s) == 0 {
				delete(t.callers, cid)
			}
		}
	}
}

// recordIfMismatch records err's mismatch, if it is one.
func (t *MismatchThrottle) recordIfMismatch(ctx context.Context, phone string, err error) {
	if errs.Reason(err) == domain.ReasonNotMatched {
		t.record(ctx, phone)
	}
}
