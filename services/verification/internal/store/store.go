// Package store keeps verification sessions and challenges in PostgreSQL. Every check, resend and
// close of a submission runs in one transaction that locks the session row before its challenge
// rows (sessions in id order), so attempt counting is exact and "all passed" versus "timed out" is
// decided once. Effects on other services are outbox rows written in the same transaction. The rules
// are internal/domain's; this package and memstore differ only in storage.
package store

import (
	"context"
	"crypto/rand"
	"embed"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/logging"
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
	// rand is the code source: crypto/rand.Reader (SetRand replaces it in tests).
	rand io.Reader
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
	s := &Store{pool: pool, clock: clk, hasher: hasher, limits: limits, log: log, rand: rand.Reader, wake: wake}
	s.closes = &batch.Group[*pb.CloseIfIncompleteRequest, *pb.CloseIfIncompleteResponse]{Run: s.closeBatch, MaxBatch: 128}
	s.verifies = &batch.Group[domain.VerifyInput, verifyResult]{Run: s.verifyBatch, MaxBatch: verifyMaxBatch, Flights: verifyFlights}
	return s
}

// SetRand replaces the code source, so tests draw known, distinct codes. Call it before any use.
func (s *Store) SetRand(r io.Reader) { s.rand = r }

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

// lockOrder serialises OpenSession and CancelSession of one order, including the case where no
// session row exists yet to lock.
func lockOrder(ctx context.Context, tx pgx.Tx, orderID string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('verification-order:' || $1, 0))`, orderID)
	return err
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

func closeSession(ctx context.Context, tx pgx.Tx, now time.Time, id string, state domain.SessionState) error {
	if _, err := tx.Exec(ctx, `UPDATE sessions SET state = $2, closed_at = $3 WHERE id = $1`, id, string(state), now); err != nil {
		return fmt.Errorf("close session: %w", err)
	}
	return nil
}

// OpenSession creates the session of (order_id, submission) with one challenge per verifier and
// queues one SMS per challenge. A repeat returns the existing session and draws nothing; a newer
// submission cancels the order's open session; an older one is refused as stale; one arriving at or
// after its deadline is recorded as timed out and the order is returned at once.
func (s *Store) OpenSession(ctx context.Context, req *pb.OpenSessionRequest, spec domain.OpenSpec) (*pb.OpenSessionResponse, error) {
	var enqueued bool
	resp, err := idempotency.Do(ctx, s.pool, s.clock.Now(), pb.VerificationInternalService_OpenSession_FullMethodName,
		req.GetRequestId(), convert.RedactOpenRequest(req, s.hasher),
		func() *pb.OpenSessionResponse { return &pb.OpenSessionResponse{} },
		func(tx pgx.Tx) (*pb.OpenSessionResponse, error) {
			enqueued = false
			if err := lockOrder(ctx, tx, spec.OrderID); err != nil {
				return nil, err
			}
			now := s.clock.Now()
			existing, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE order_id = $1 AND submission = $2`,
				spec.OrderID, spec.Submission))
			if err != nil && !pg.IsNoRows(err) {
				return nil, err
			}
			var latest *int32
			if err := tx.QueryRow(ctx, `SELECT max(submission) FROM sessions WHERE order_id = $1`, spec.OrderID).Scan(&latest); err != nil {
				return nil, err
			}
			action, err := domain.DecideOpen(now, err == nil, derefOr0(latest), spec)
			if err != nil {
				return nil, err
			}
			if action == domain.OpenReplay {
				st, err := s.statusOf(ctx, tx, existing)
				return &pb.OpenSessionResponse{Status: st}, err
			}
			if _, err := tx.Exec(ctx, `UPDATE sessions SET state = 'CANCELLED', closed_at = $2 WHERE order_id = $1 AND state = 'OPEN'`,
				spec.OrderID, now); err != nil {
				return nil, fmt.Errorf("supersede: %w", err)
			}
			sess, chs, tails, codes, err := domain.NewSession(now, uuid.NewString, spec, action, s.hasher, s.rand)
			if err != nil {
				return nil, err
			}
			var closedAt *time.Time
			if sess.State != domain.SessionOpen {
				closedAt = &now
			}
			if _, err := tx.Exec(ctx, `INSERT INTO sessions (id, order_id, submission, state, deadline_at, locale, created_at, closed_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, sess.ID, sess.OrderID, sess.Submission, string(sess.State), sess.DeadlineAt,
				sess.Locale, now, closedAt); err != nil {
				return nil, fmt.Errorf("insert session: %w", err)
			}
			for _, c := range chs {
				if _, err := tx.Exec(ctx, `INSERT INTO challenges (id, session_id, verifier_id, phone, roles, code_hash, code_key_id,
					generation, last_sent_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'PENDING')`,
					c.ID, c.SessionID, c.VerifierID, c.Phone, c.Roles, c.CodeHash, c.CodeKeyID, c.Generation, now); err != nil {
					return nil, fmt.Errorf("insert challenge: %w", err)
				}
				for _, t := range tails[c.ID] {
					if _, err := tx.Exec(ctx, `INSERT INTO challenge_id_tails (challenge_id, key_id, tail_hash) VALUES ($1, $2, $3)`,
						c.ID, t.KeyID, t.Hash); err != nil {
						return nil, fmt.Errorf("insert id tail: %w", err)
					}
				}
			}
			if err := outbox.EnqueueAll(ctx, tx, now, convert.OpenMessages(sess, chs, codes)); err != nil {
				return nil, err
			}
			enqueued = true
			s.logOpened(sess, len(spec.Verifiers))
			return &pb.OpenSessionResponse{Status: convert.Status(sess, chs)}, nil
		})
	if err != nil {
		return nil, err
	}
	if enqueued {
		s.wake()
	}
	return resp, nil
}

func derefOr0(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

func (s *Store) logOpened(sess domain.Session, verifiers int) {
	if sess.State == domain.SessionTimedOut {
		s.log.Warn("session opened after its deadline: recorded as timed out, order returned", logging.OrderID(sess.OrderID),
			logging.Submission(sess.Submission), zap.Time("deadline_at", sess.DeadlineAt))
		return
	}
	s.log.Info("session opened", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission),
		zap.Int("verifiers", verifiers), zap.Time("deadline_at", sess.DeadlineAt))
}

// ResendByPhone sends a new code to the pending verifier of an open session identified by phone +
// ID tail. A wrong ID tail for a phone with pending challenges counts as a failed check on each of
// them (see domain.DecideResendByPhone) and answers the uniform VERIFICATION_NOT_MATCHED, like an
// unknown phone. Only a caller who named a matching phone + tail learns more (too soon, limit, not
// pending): they have proved they know both.
func (s *Store) ResendByPhone(ctx context.Context, req *pb.ResendCodeRequest, phone, tail string) (*pb.ResendCodeResponse, error) {
	method := pb.VerificationService_ResendCode_FullMethodName
	if err := idempotency.CheckRequestID(req.GetRequestId()); err != nil {
		return nil, err
	}
	// The idempotency table keeps a hash of the request: give it keyed digests, not the phone and tail.
	fingerprint := &pb.ResendCodeRequest{RequestId: req.GetRequestId(), Phone: s.hasher.Fingerprint(phone, tail)}
	var resp *pb.ResendCodeResponse
	var notMatched, enqueued bool
	var locked []lockedVerifier
	// Not idempotency.Do: a mismatch must commit its failure counts and still answer an error, which
	// Do would roll back. Lookup and Save run in this one transaction instead.
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		resp, notMatched, enqueued, locked = nil, false, false, nil
		sessions, chs, tails, err := lockPhone(ctx, tx, phone)
		if err != nil {
			return err
		}
		// Twins of one request_id queue on the row locks above, so this lookup sees the first one's answer.
		prev := &pb.ResendCodeResponse{}
		if found, err := idempotency.Lookup(ctx, tx, method, req.GetRequestId(), fingerprint, prev); err != nil || found {
			resp = prev
			return err
		}
		now := s.clock.Now()
		cands := make([]domain.ResendCandidate, len(chs))
		for i, c := range chs {
			sess := sessions[c.SessionID]
			cands[i] = domain.ResendCandidate{Check: domain.CandidateOf(sess, c),
				TailMatches: s.hasher.TailMatches(c.ID, tails[c.ID], tail), CreatedAt: sess.CreatedAt}
		}
		if len(chs) == 0 {
			s.hasher.Burn("000000", tail)
		}
		found, failures := domain.DecideResendByPhone(now, cands, s.limits.MaxFailedAttempts)
		if found < 0 {
			notMatched = true
			b := &pgx.Batch{}
			if locked, err = queueFailures(b, now, sessions, chs, failures); err != nil {
				return err
			}
			enqueued = len(locked) > 0
			return tx.SendBatch(ctx, b).Close()
		}
		c := chs[found]
		r, err := s.applyResend(ctx, tx, now, sessions[c.SessionID], c)
		if err != nil {
			return err
		}
		enqueued = true
		resp = &pb.ResendCodeResponse{Resend: r}
		return idempotency.Save(ctx, tx, now, method, req.GetRequestId(), fingerprint, resp)
	})
	if err != nil {
		return nil, err
	}
	s.reportVerify(verifyResult{locked: locked})
	if enqueued {
		s.wake()
	}
	if notMatched {
		return nil, domain.ErrNotMatched()
	}
	return resp, nil
}

// ResendVerifier sends a new code to one verifier of an order's latest submission.
func (s *Store) ResendVerifier(ctx context.Context, req *pb.ResendVerifierCodeRequest) (*pb.ResendVerifierCodeResponse, error) {
	notFound := errs.NotFound(domain.ReasonVerifierNotFound, "no such verifier for this order")
	resp, err := idempotency.Do(ctx, s.pool, s.clock.Now(), pb.VerificationInternalService_ResendVerifierCode_FullMethodName,
		req.GetRequestId(), req, func() *pb.ResendVerifierCodeResponse { return &pb.ResendVerifierCodeResponse{} },
		func(tx pgx.Tx) (*pb.ResendVerifierCodeResponse, error) {
			sess, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE order_id = $1
				ORDER BY submission DESC LIMIT 1 FOR UPDATE`, req.GetOrderId()))
			if pg.IsNoRows(err) {
				return nil, notFound
			}
			if err != nil {
				return nil, err
			}
			c, err := scanChallenge(tx.QueryRow(ctx, `SELECT `+challengeCols+` FROM challenges
				WHERE session_id = $1 AND verifier_id = $2 FOR UPDATE`, sess.ID, req.GetVerifierId()))
			if pg.IsNoRows(err) {
				return nil, notFound
			}
			if err != nil {
				return nil, err
			}
			r, err := s.applyResend(ctx, tx, s.clock.Now(), sess, c)
			return &pb.ResendVerifierCodeResponse{Resend: r}, err
		})
	if err != nil {
		return nil, err
	}
	s.wake()
	return resp, nil
}

// applyResend applies the limits to a locked verifier, replaces its code hash and queues the new SMS.
// now must be read after the locks were taken.
func (s *Store) applyResend(ctx context.Context, tx pgx.Tx, now time.Time, sess domain.Session, c domain.Challenge) (*pb.Resend, error) {
	code, err := domain.PrepareResend(now, sess, &c, s.limits, s.hasher, s.rand)
	if err != nil {
		return nil, err
	}
	// The old hash is overwritten in this transaction: from its commit on, only the new code passes.
	if _, err := tx.Exec(ctx, `UPDATE challenges SET code_hash = $2, code_key_id = $3, generation = $4,
		resends_used = $5, last_sent_at = $6 WHERE id = $1`,
		c.ID, c.CodeHash, c.CodeKeyID, c.Generation, c.ResendsUsed, c.LastSentAt); err != nil {
		return nil, fmt.Errorf("replace code: %w", err)
	}
	if err := outbox.EnqueueAll(ctx, tx, now, []outbox.Message{convert.CodeMessage(sess, c, code)}); err != nil {
		return nil, err
	}
	s.log.Info("code resent", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission),
		zap.String("verifier_id", c.VerifierID), zap.Int("generation", c.Generation), logging.Phone(c.Phone))
	return convert.ResendAnswer(now, sess, c, s.limits), nil
}

// CancelSession closes an open session because its order was cancelled; other states stay. When the
// session does not exist yet (the cancel overtook OpenSession in the outboxes) a CANCELLED tombstone
// is written, so the late OpenSession finds it and sends no codes for a cancelled order.
func (s *Store) CancelSession(ctx context.Context, req *pb.CancelSessionRequest) (*pb.CancelSessionResponse, error) {
	return idempotency.Do(ctx, s.pool, s.clock.Now(), pb.VerificationInternalService_CancelSession_FullMethodName, req.GetRequestId(), req,
		func() *pb.CancelSessionResponse { return &pb.CancelSessionResponse{} },
		func(tx pgx.Tx) (*pb.CancelSessionResponse, error) {
			if err := lockOrder(ctx, tx, req.GetOrderId()); err != nil {
				return nil, err
			}
			sess, err := lockSession(ctx, tx, req.GetOrderId(), req.GetSubmission())
			now := s.clock.Now()
			switch {
			case errs.Reason(err) == domain.ReasonSessionNotFound:
				sess = domain.Tombstone(now, uuid.NewString(), req.GetOrderId(), req.GetSubmission())
				if _, err := tx.Exec(ctx, `INSERT INTO sessions (id, order_id, submission, state, deadline_at, locale, created_at, closed_at)
					VALUES ($1, $2, $3, $4, $5, $6, $5, $5)`, sess.ID, sess.OrderID, sess.Submission, string(sess.State), now, sess.Locale); err != nil {
					return nil, fmt.Errorf("insert cancelled session: %w", err)
				}
			case err != nil:
				return nil, err
			case sess.State == domain.SessionOpen:
				if err := closeSession(ctx, tx, now, sess.ID, domain.SessionCancelled); err != nil {
					return nil, err
				}
				sess.State = domain.SessionCancelled
			}
			s.log.Info("session cancelled", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission),
				zap.String("state", string(sess.State)))
			st, err := s.statusOf(ctx, tx, sess)
			return &pb.CancelSessionResponse{Status: st}, err
		})
}

func lockSession(ctx context.Context, tx pgx.Tx, orderID string, submission int32) (domain.Session, error) {
	sess, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE order_id = $1 AND submission = $2 FOR UPDATE`,
		orderID, submission))
	if pg.IsNoRows(err) {
		return domain.Session{}, domain.ErrSessionNotFound()
	}
	return sess, err
}

// Status returns the latest submission's session of an order.
func (s *Store) Status(ctx context.Context, orderID string) (*pb.VerificationStatus, error) {
	var st *pb.VerificationStatus
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		sess, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE order_id = $1
			ORDER BY submission DESC LIMIT 1`, orderID))
		if pg.IsNoRows(err) {
			return domain.ErrSessionNotFound()
		}
		if err != nil {
			return err
		}
		st, err = s.statusOf(ctx, tx, sess)
		return err
	})
	return st, err
}

func (s *Store) statusOf(ctx context.Context, tx pgx.Tx, sess domain.Session) (*pb.VerificationStatus, error) {
	chs, err := collectChallenges(tx.Query(ctx, `SELECT `+challengeCols+` FROM challenges WHERE session_id = $1`, sess.ID))
	if err != nil {
		return nil, fmt.Errorf("load challenges: %w", err)
	}
	return convert.Status(sess, chs), nil
}
