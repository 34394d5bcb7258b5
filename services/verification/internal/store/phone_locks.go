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

// lockPhoneSQL locks the open sessions that have a pending challenge for one of the phones ($1) and
// those challenges in one statement. The rows are locked in ORDER BY order, session then challenge of each
// row (FOR UPDATE OF s, c), so sessions are taken in id order and a challenge only under its session's
// lock, like every other writer: no deadlock. Rows changed by a transaction we waited for are re-checked
// (READ COMMITTED), so the states are the committed ones. The ID-tail hashes ride along in the row
// (paired by ordering both arrays on the primary key).
const lockPhoneSQL = `SELECT s.id::text, s.order_id, s.submission, s.state, s.deadline_at, s.locale, s.created_at,
	c.id::text, c.session_id::text, c.verifier_id, c.phone, c.roles, c.code_hash, c.code_key_id, c.generation,
	c.failed_attempts, c.resends_used, c.last_sent_at, c.state, c.passed_at,
	(SELECT array_agg(t.key_id ORDER BY t.tail_hash) FROM challenge_id_tails t WHERE t.challenge_id = c.id),
	(SELECT array_agg(t.tail_hash ORDER BY t.tail_hash) FROM challenge_id_tails t WHERE t.challenge_id = c.id)
	FROM sessions s JOIN challenges c ON c.session_id = s.id
	WHERE c.phone = ANY($1::text[]) AND c.state = 'PENDING' AND s.state = 'OPEN'
	ORDER BY s.id, c.id
	FOR UPDATE OF s, c`

// lockPhone locks the open sessions that have a pending challenge for phone, and those challenges,
// and returns them (challenges ordered by id) with each challenge's ID-tail hashes, in one round trip.
func lockPhone(ctx context.Context, tx pgx.Tx, phone string) (map[string]domain.Session, []domain.Challenge,
	map[string][]domain.TailHash, error) {
	rows, err := tx.Query(ctx, lockPhoneSQL, []string{phone})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lock phone: %w", err)
	}
	return scanLockRows(rows)
}

// scanLockRows reads and closes the rows of lockPhoneSQL.
func scanLockRows(rows pgx.Rows) (map[string]domain.Session, []domain.Challenge, map[string][]domain.TailHash, error) {
	defer rows.Close()
	byID := map[string]domain.Session{}
	tails := map[string][]domain.TailHash{}
	var chs []domain.Challenge
	for rows.Next() {
		var sess domain.Session
		var c domain.Challenge
		var sessState, chState string
		var keyIDs []string
		var hashes [][]byte
		if err := rows.Scan(&sess.ID, &sess.OrderID, &sess.Submission, &sessState, &sess.DeadlineAt, &sess.Locale, &sess.CreatedAt,
			&c.ID, &c.SessionID, &c.VerifierID, &c.Phone, &c.Roles, &c.CodeHash, &c.CodeKeyID, &c.Generation,
			&c.Failed, &c.ResendsUsed, &c.LastSentAt, &chState, &c.PassedAt, &keyIDs, &hashes); err != nil {
			return nil, nil, nil, fmt.Errorf("lock phone: %w", err)
		}
		if len(keyIDs) != len(hashes) {
			return nil, nil, nil, fmt.Errorf("lock phone: %d tail key ids for %d tail hashes", len(keyIDs), len(hashes))
		}
		sess.State = domain.SessionState(sessState)
		c.State = domain.ChallengeState(chState)
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

// queueFailures queues one more failure on each challenge of fs into b; at the limit a challenge
// locks, its session fails and filing is owed a return and deadline a cancel (outbox rows). It returns
// the verifiers it locked, to report once the transaction committed.
func queueFailures(b *pgx.Batch, now time.Time, sessions map[string]domain.Session, chs []domain.Challenge,
	fs []domain.Failure) ([]lockedVerifier, error) {
	var locked []lockedVerifier
	for _, f := range fs {
		c := chs[f.Index]
		sess := sessions[c.SessionID]
		state := domain.ChallengePending
		if f.Lock {
			state = domain.ChallengeLocked
		}
		b.Queue(`UPDATE challenges SET failed_attempts = $2, state = $3 WHERE id = $1`, c.ID, f.FailedAttempts, string(state))
		if !f.Lock {
			continue
		}
		b.Queue(`UPDATE sessions SET state = $2, closed_at = $3 WHERE id = $1`, sess.ID, string(domain.SessionFailed), now)
		if err := outbox.QueueInsert(b, now, convert.LockedMessages(sess)); err != nil {
			return nil, err
		}
		locked = append(locked, lockedVerifier{sess: sess, c: c})
	}
	return locked, nil
}
