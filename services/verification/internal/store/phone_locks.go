package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// The locks a check by phone takes, shared by Verify (verify_batch.go) and the public resend
// (engine.go UpdatePhone), and the failures a mismatch counts.

// lockPhone locks the open sessions that have a pending challenge for phone, and those challenges,
// and returns them (challenges ordered by id) with each challenge's ID-tail hashes, in one round trip.
func lockPhone(ctx context.Context, tx pgx.Tx, phone string) (map[string]domain.Session, []domain.Challenge,
	map[string][]domain.TailHash, error) {
	rows, err := tx.Query(ctx, queries.LockPhone, []string{phone})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lock phone: %w", err)
	}
	return scanLockRows(rows)
}

// scanLockRows reads and closes the rows of LockPhone.
func scanLockRows(rows pgx.Rows) (map[string]domain.Session, []domain.Challenge, map[string][]domain.TailHash, error) {
	defer rows.Close()
	byID := map[string]domain.Session{}
	tails := map[string][]domain.TailHash{}
	var chs []domain.Challenge
	for rows.Next() {
		var sess domain.Session
		var c domain.Challenge
		var sessState, chState, delivery string
		var keyIDs []string
		var hashes [][]byte
		if err := rows.Scan(&sess.ID, &sess.OrderID, &sess.Submission, &sessState, &sess.DeadlineAt, &sess.Locale, &sess.CreatedAt, &sess.Tenant,
			&c.ID, &c.SessionID, &c.VerifierID, &c.Phone, &c.Roles, &c.CodeHash, &c.CodeKeyID, &c.Generation,
			&c.Failed, &c.ResendsUsed, &c.LastSentAt, &chState, &c.PassedAt, &c.LinkHash, &delivery, &keyIDs, &hashes); err != nil {
			return nil, nil, nil, fmt.Errorf("lock phone: %w", err)
		}
		if len(keyIDs) != len(hashes) {
			return nil, nil, nil, fmt.Errorf("lock phone: %d tail key ids for %d tail hashes", len(keyIDs), len(hashes))
		}
		sess.State = domain.SessionState(sessState)
		c.State, c.Delivery = domain.ChallengeState(chState), domain.CodeDelivery(delivery)
		byID[sess.ID] = sess
		chs = append(chs, c)
		if len(hashes) > 0 {
			ts := make([]domain.TailHash, len(hashes))
			for i := range hashes {
				ts[i] = domain.TailHash{KeyID: keyIDs[i], Hash: hashes[i]}
			}
			tails[c.ID] = ts
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("lock phone: %w", err)
	}
	// Rows come in lock order (session id first); the rules see the challenges by id, as before.
	slices.SortFunc(chs, func(a, b domain.Challenge) int { return strings.Compare(a.ID, b.ID) })
	return byID, chs, tails, nil
}

// failureCounts are the challenges whose failure count a batch changed, with their last values: one
// CountFailures statement writes them all.
type failureCounts struct {
	at    map[string]int // challenge id -> index in the slices
	ids   []string
	count []int
	state []string
}

func (f *failureCounts) set(c domain.Challenge) {
	if f.at == nil {
		f.at = map[string]int{}
	}
	if i, ok := f.at[c.ID]; ok {
		f.count[i], f.state[i] = c.Failed, string(c.State)
		return
	}
	f.at[c.ID] = len(f.ids)
	f.ids, f.count, f.state = append(f.ids, c.ID), append(f.count, c.Failed), append(f.state, string(c.State))
}

// queue queues the one statement on b (nothing when no failure was counted). It must come before
// PassAll: a challenge can fail and then pass in one batch, and the pass is its last state.
func (f *failureCounts) queue(b *pgx.Batch) {
	if len(f.ids) > 0 {
		b.Queue(queries.CountFailures, f.ids, f.count, f.state)
	}
}

// queueMismatch queues the writes of a mismatch on phone into b (e: what domain.ApplyPhoneCheck did
// to chs, the phone's pending challenges): the changed counts and states (into counts, written at the
// end of the batch), the failed sessions and the returns they owe (with the phone's lock when the
// budget was spent). It returns the verifiers it locked, to report once the transaction committed.
func (s *Store) queueMismatch(b *pgx.Batch, now time.Time, phone string, sessions map[string]domain.Session, chs []domain.Challenge,
	e domain.PhoneEffects, counts *failureCounts) ([]lockedVerifier, error) {
	for _, i := range e.Changed {
		counts.set(chs[i])
	}
	for _, id := range e.Returned {
		b.Queue(queries.SetSessionState, id, string(domain.SessionFailed), now)
	}
	if err := outbox.QueueInsert(b, s.keys, now, convert.ReturnedMessages(sessions, phone, e)); err != nil {
		return nil, err
	}
	locked := make([]lockedVerifier, 0, len(e.Locked))
	for _, i := range e.Locked {
		locked = append(locked, lockedVerifier{sess: sessions[chs[i].SessionID], c: chs[i]})
	}
	return locked, nil
}
