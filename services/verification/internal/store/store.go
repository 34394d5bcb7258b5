// Package store is the PostgreSQL engine of verification (app.Engine): sessions and challenges. Every
// check, resend and close of a submission runs in one transaction that locks the session row before
// its challenge rows (sessions in id order), so attempt counting is exact and "all passed" versus
// "timed out" is decided once. Calls owed to other services are outbox rows written in the same
// transaction. The rules are internal/domain's and the single-order use cases internal/app's; this
// package and memstore differ only in storage.
package store

import (
	"context"
	"embed"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

//go:embed migrations/*.sql
var fs embed.FS

// Migrations creates the sessions, challenges and challenge_id_tails tables.
var Migrations = pg.Source{Name: "verification", FS: fs}

// Store is the PostgreSQL verification store.
type Store struct {
	// OnLock, when set, is called after a verifier was locked by too many failed attempts (metrics).
	OnLock func()
	pool   *pgxpool.Pool
	clock  clock.Clock
	hasher *domain.Hasher
	limits domain.Limits
	log    *zap.Logger
	// wake is called after a commit that wrote outbox rows (the relay's Wake), so they leave at once.
	wake func()
	// closes serves concurrent CloseIfIncomplete calls in batches (closeBatch).
	closes *batch.Group[*pb.CloseIfIncompleteRequest, *pb.CloseIfIncompleteResponse]
	// verifies serves concurrent Verify calls in batches (verifyBatch).
	verifies *batch.Group[domain.VerifyInput, verifyResult]
}

// New returns a store; wake may be nil.
func New(pool *pgxpool.Pool, clk clock.Clock, hasher *domain.Hasher, limits domain.Limits, log *zap.Logger, wake func()) *Store {
	if wake == nil {
		wake = func() {}
	}
	s := &Store{pool: pool, clock: clk, hasher: hasher, limits: limits, log: log, wake: wake}
	s.closes = &batch.Group[*pb.CloseIfIncompleteRequest, *pb.CloseIfIncompleteResponse]{Run: s.closeBatch, MaxBatch: 128}
	s.verifies = &batch.Group[domain.VerifyInput, verifyResult]{Run: s.verifyBatch, MaxBatch: verifyMaxBatch, Flights: verifyFlights}
	return s
}

const sessionCols = `id::text, order_id, submission, state, deadline_at, locale, created_at`

const challengeCols = `id::text, session_id::text, verifier_id, phone, roles, code_hash, code_key_id, generation,
	failed_attempts, resends_used, last_sent_at, state, passed_at`

func scanSession(row pgx.Row) (domain.Session, error) {
	var s domain.Session
	var state string
	err := row.Scan(&s.ID, &s.OrderID, &s.Submission, &state, &s.DeadlineAt, &s.Locale, &s.CreatedAt)
	s.State = domain.SessionState(state)
	return s, err
}

func scanChallenge(row pgx.Row) (domain.Challenge, error) {
	var c domain.Challenge
	var state string
	err := row.Scan(&c.ID, &c.SessionID, &c.VerifierID, &c.Phone, &c.Roles, &c.CodeHash, &c.CodeKeyID, &c.Generation,
		&c.Failed, &c.ResendsUsed, &c.LastSentAt, &state, &c.PassedAt)
	c.State = domain.ChallengeState(state)
	return c, err
}

func collectChallenges(rows pgx.Rows, err error) ([]domain.Challenge, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Challenge, error) { return scanChallenge(r) })
}

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
		targets, payloads, sensitive, err := outboxRows(convert.LockedMessages(sess))
		if err != nil {
			return nil, err
		}
		for i := range targets {
			b.Queue(outbox.InsertSQL, targets[i], payloads[i], now, sensitive[i])
		}
		locked = append(locked, lockedVerifier{sess: sess, c: c})
	}
	return locked, nil
}
