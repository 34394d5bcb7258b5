package domain

import (
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// The mismatch throttle (security review M3, M1): a caller whose checks mismatch on many distinct
// phones is refused before a further check can count a failure on a stranger's phone, so knowing
// phone numbers is not enough to lock other people's verifications or to probe which numbers are
// verifiers.

// ReasonTooManyMismatchedPhones answers a caller over its distinct mismatched phones.
const ReasonTooManyMismatchedPhones = "TOO_MANY_MISMATCHED_PHONES"

// MismatchWindow is the window of the mismatched-phones throttle.
const MismatchWindow = time.Hour

// CheckMismatchedPhones decides whether a caller whose last mismatches are seen (phone key -> time
// of its last mismatch) may check phoneKey at now: a phone it already mismatched on is always
// allowed (the per-phone budget bounds those); a new one only while fewer than max distinct phones
// mismatched in the window. max 0: no limit. The refusal carries the wait until the oldest expires.
func CheckMismatchedPhones(now time.Time, seen map[string]time.Time, phoneKey string, max int) error {
	if max <= 0 {
		return nil
	}
	if at, ok := seen[phoneKey]; ok && now.Sub(at) < MismatchWindow {
		return nil
	}
	n := 0
	var oldest time.Time
	for _, at := range seen {
		if now.Sub(at) >= MismatchWindow {
			continue
		}
		n++
		if oldest.IsZero() || at.Before(oldest) {
			oldest = at
		}
	}
	if n < max {
		return nil
	}
	wait := oldest.Add(MismatchWindow).Sub(now)
	return errs.Exhausted(ReasonTooManyMismatchedPhones, wait,
		"too many checks that matched nothing, on %d different phones in the last hour: try again in %s", n, wait.Round(time.Second))
}
