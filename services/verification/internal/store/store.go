// Package store keeps verification sessions and challenges in PostgreSQL. Every check, resend and
// close of a submission runs in one transaction that locks the session row first and its challenge
// rows second (ordered by id), so attempt counting is exact and "all passed" versus "timed out" is
// decided once. Effects on other services are outbox rows written in the same transaction.
package store

import (
	"context"
	"crypto/rand"
	"embed"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pii"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

//go:embed migrations/*.sql
var fs embed.FS

// Migrations creates the sessions, challenges and challenge_id_tails tables.
var Migrations = pg.Source{Name: "verification", FS: fs}

// Outbox targets this service writes; server.Run maps each to a peer client.
const (
	TargetSendMessage    = "smsdispatch.SendMessage"
	TargetMarkVerified   = "filing.MarkVerified"
	TargetReturnOrder    = "filing.ReturnOrder"
	TargetCancelDeadline = "deadline.CancelDeadline"
)

// Store is the PostgreSQL verification store.
type Store struct {
	pool   *pgxpool.Pool
	clock  clock.Clock
	hasher *domain.Hasher
	limits domain.Limits
	log    *zap.Logger
	// rand is the code source: crypto/rand.Reader.
	rand io.Reader
	// wake is called after a commit that wrote outbox rows (the relay's Wake), so they leave at once.
	wake func()
}

// New returns a store; wake may be nil.
func New(pool *pgxpool.Pool, clk clock.Clock, hasher *domain.Hasher, limits domain.Limits, log *zap.Logger, wake func()) *Store {
	if wake == nil {
		wake = func() {}
	}
	return &Store{pool: pool, clock: clk, hasher: hasher, limits: limits, log: log, rand: rand.Reader, wake: wake}
}

type session struct {
	id         string
	orderID    string
	submission int32
	state      domain.SessionState
	deadlineAt time.Time
	locale     string
	createdAt  time.Time
	closedAt   *time.Time
}

type challenge struct {
	id, sessionID, verifierID, phone string
	roles                            []string
	codeHash                         []byte
	codeKeyID                        string
	generation, failed, resendsUsed  int
	lastSentAt                       time.Time
	state                            domain.ChallengeState
	passedAt                         *time.Time
}

type tailHash struct {
	keyID string
	hash  []byte
}

const sessionCols = `id::text, order_id, submission, state, deadline_at, locale, created_at, closed_at`

const challengeCols = `id::text, session_id::text, verifier_id, phone, roles, code_hash, code_key_id, generation,
	failed_attempts, resends_used, last_sent_at, state, passed_at`

func scanSession(row pgx.Row) (session, error) {
	var s session
	var state string
	err := row.Scan(&s.id, &s.orderID, &s.submission, &state, &s.deadlineAt, &s.locale, &s.createdAt, &s.closedAt)
	s.state = domain.SessionState(state)
	return s, err
}

func scanChallenge(row pgx.Row) (challenge, error) {
	var c challenge
	var state string
	err := row.Scan(&c.id, &c.sessionID, &c.verifierID, &c.phone, &c.roles, &c.codeHash, &c.codeKeyID, &c.generation,
		&c.failed, &c.resendsUsed, &c.lastSentAt, &state, &c.passedAt)
	c.state = domain.ChallengeState(state)
	return c, err
}

func collectSessions(rows pgx.Rows, err error) ([]session, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (session, error) { return scanSession(r) })
}

func collectChallenges(rows pgx.Rows, err error) ([]challenge, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (challenge, error) { return scanChallenge(r) })
}

// lockOrder serialises OpenSession and CancelSession of one order, including the case where no
// session row exists yet to lock.
func lockOrder(ctx context.Context, tx pgx.Tx, orderID string) error {
	_, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended('verification-order:' || $1, 0))`, orderID)
	return err
}

// lockPhone locks, in the global order (sessions by id, then challenges by id), the open sessions
// that have a pending challenge for phone, and those challenges. Rows are re-read after the lock, so
// states are the committed ones.
func lockPhone(ctx context.Context, tx pgx.Tx, phone string) (map[string]session, []challenge, error) {
	sessions, err := collectSessions(tx.Query(ctx, `SELECT `+sessionCols+` FROM sessions
		WHERE state = 'OPEN' AND id IN (SELECT session_id FROM challenges WHERE phone = $1 AND state = 'PENDING')
		ORDER BY id FOR UPDATE`, phone))
	if err != nil {
		return nil, nil, fmt.Errorf("lock sessions: %w", err)
	}
	byID := make(map[string]session, len(sessions))
	ids := make([]string, 0, len(sessions))
	for _, s := range sessions {
		byID[s.id] = s
		ids = append(ids, s.id)
	}
	if len(ids) == 0 {
		return byID, nil, nil
	}
	chs, err := collectChallenges(tx.Query(ctx, `SELECT `+challengeCols+` FROM challenges
		WHERE session_id = ANY($1::uuid[]) AND phone = $2 ORDER BY id FOR UPDATE`, ids, phone))
	if err != nil {
		return nil, nil, fmt.Errorf("lock challenges: %w", err)
	}
	return byID, chs, nil
}

func loadTails(ctx context.Context, tx pgx.Tx, chs []challenge) (map[string][]tailHash, error) {
	ids := make([]string, len(chs))
	for i, c := range chs {
		ids[i] = c.id
	}
	out := map[string][]tailHash{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := tx.Query(ctx, `SELECT challenge_id::text, key_id, tail_hash FROM challenge_id_tails
		WHERE challenge_id = ANY($1::uuid[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("load tails: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var t tailHash
		if err := rows.Scan(&id, &t.keyID, &t.hash); err != nil {
			return nil, err
		}
		out[id] = append(out[id], t)
	}
	return out, rows.Err()
}

// tailMatches compares against every stored tail hash without stopping early, so the time does not
// depend on which tail matched.
func (s *Store) tailMatches(c challenge, tails []tailHash, tail string) bool {
	ok := false
	for _, t := range tails {
		if s.hasher.VerifyTail(t.keyID, t.hash, c.id, tail) {
			ok = true
		}
	}
	return ok
}

// Verify checks one entry. A pass answers PASSED_WAITING_FOR_OTHERS or ALL_PASSED; every mismatch
// commits its failure counts and then answers the uniform VERIFICATION_NOT_MATCHED.
func (s *Store) Verify(ctx context.Context, in domain.VerifyInput) (*pb.VerifyResponse, error) {
	var resp *pb.VerifyResponse
	var enqueued bool
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		resp, enqueued = nil, false
		now := s.clock.Now()
		sessions, chs, err := lockPhone(ctx, tx, in.Phone)
		if err != nil {
			return err
		}
		tails, err := loadTails(ctx, tx, chs)
		if err != nil {
			return err
		}
		cands := make([]domain.Candidate, len(chs))
		for i, c := range chs {
			sess := sessions[c.sessionID]
			cands[i] = domain.Candidate{
				SessionState: sess.state, ChallengeState: c.state, DeadlineAt: sess.deadlineAt, FailedAttempts: c.failed,
				CodeMatches: s.hasher.VerifyCode(c.codeKeyID, c.codeHash, c.id, in.Code),
				TailMatches: s.tailMatches(c, tails[c.id], in.Tail),
			}
		}
		if len(chs) == 0 {
			s.hasher.Burn(in.Code, in.Tail)
		}
		d := domain.DecideVerify(now, cands, s.limits.MaxFailedAttempts)
		if d.Pass >= 0 {
			c := chs[d.Pass]
			resp, enqueued, err = s.pass(ctx, tx, now, sessions[c.sessionID], c)
			return err
		}
		for _, f := range d.Failures {
			c := chs[f.Index]
			locked, err := s.fail(ctx, tx, now, sessions[c.sessionID], c, f)
			if err != nil {
				return err
			}
			enqueued = enqueued || locked
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if enqueued {
		s.wake()
	}
	if resp == nil {
		return nil, domain.ErrNotMatched()
	}
	return resp, nil
}

func (s *Store) pass(ctx context.Context, tx pgx.Tx, now time.Time, sess session, c challenge) (*pb.VerifyResponse, bool, error) {
	if _, err := tx.Exec(ctx, `UPDATE challenges SET state = 'PASSED', passed_at = $2 WHERE id = $1`, c.id, now); err != nil {
		return nil, false, fmt.Errorf("pass challenge: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT state FROM challenges WHERE session_id = $1`, sess.id)
	if err != nil {
		return nil, false, err
	}
	states, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.ChallengeState, error) {
		var st string
		err := r.Scan(&st)
		return domain.ChallengeState(st), err
	})
	if err != nil {
		return nil, false, err
	}
	s.log.Info("verifier passed", logging.OrderID(sess.orderID), logging.Submission(sess.submission),
		zap.String("verifier_id", c.verifierID), logging.Phone(c.phone))
	if !domain.AllPassed(states) {
		return &pb.VerifyResponse{Result: pb.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS, OrderId: sess.orderID,
			MessageZh: domain.MessageWaitingZH, MessageEn: domain.MessageWaitingEN}, false, nil
	}
	if err := closeSession(ctx, tx, now, sess.id, domain.SessionPassed); err != nil {
		return nil, false, err
	}
	if err := outbox.Enqueue(ctx, tx, now, TargetMarkVerified, &filingv1.MarkVerifiedRequest{
		RequestId: domain.MarkVerifiedRequestID(sess.orderID, sess.submission), OrderId: sess.orderID, Submission: sess.submission,
	}); err != nil {
		return nil, false, err
	}
	if err := enqueueCancelDeadline(ctx, tx, now, sess); err != nil {
		return nil, false, err
	}
	s.log.Info("session passed", logging.OrderID(sess.orderID), logging.Submission(sess.submission))
	return &pb.VerifyResponse{Result: pb.VerifyResult_VERIFY_RESULT_ALL_PASSED, OrderId: sess.orderID,
		MessageZh: domain.MessageAllZH, MessageEn: domain.MessageAllEN}, true, nil
}

// fail records one more failure; at the limit it locks the challenge, fails the session and owes
// filing a return and deadline a cancel. It reports whether it enqueued.
func (s *Store) fail(ctx context.Context, tx pgx.Tx, now time.Time, sess session, c challenge, f domain.Failure) (bool, error) {
	state := domain.ChallengePending
	if f.Lock {
		state = domain.ChallengeLocked
	}
	if _, err := tx.Exec(ctx, `UPDATE challenges SET failed_attempts = $2, state = $3 WHERE id = $1`,
		c.id, f.FailedAttempts, string(state)); err != nil {
		return false, fmt.Errorf("count failure: %w", err)
	}
	if !f.Lock {
		return false, nil
	}
	if err := closeSession(ctx, tx, now, sess.id, domain.SessionFailed); err != nil {
		return false, err
	}
	if err := outbox.Enqueue(ctx, tx, now, TargetReturnOrder, &filingv1.ReturnOrderRequest{
		RequestId: domain.ReturnRequestID(sess.orderID, sess.submission), OrderId: sess.orderID, Submission: sess.submission,
		Reason: filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS,
	}); err != nil {
		return false, err
	}
	if err := enqueueCancelDeadline(ctx, tx, now, sess); err != nil {
		return false, err
	}
	s.log.Warn("verifier locked after too many failed attempts; order returned", logging.OrderID(sess.orderID),
		logging.Submission(sess.submission), zap.String("verifier_id", c.verifierID), logging.Phone(c.phone))
	return true, nil
}

func closeSession(ctx context.Context, tx pgx.Tx, now time.Time, id string, state domain.SessionState) error {
	if _, err := tx.Exec(ctx, `UPDATE sessions SET state = $2, closed_at = $3 WHERE id = $1`, id, string(state), now); err != nil {
		return fmt.Errorf("close session: %w", err)
	}
	return nil
}

func enqueueCancelDeadline(ctx context.Context, tx pgx.Tx, now time.Time, sess session) error {
	return outbox.Enqueue(ctx, tx, now, TargetCancelDeadline, &deadlinev1.CancelDeadlineRequest{
		RequestId: domain.CancelDeadlineRequestID(sess.orderID, sess.submission), OrderId: sess.orderID, Submission: sess.submission,
	})
}

// OpenSession creates the session of (order_id, submission) with one challenge per verifier and
// queues one SMS per challenge. A repeat returns the existing session and draws nothing; a newer
// submission cancels the order's open session; an older one is refused as stale.
func (s *Store) OpenSession(ctx context.Context, req *pb.OpenSessionRequest, spec domain.OpenSpec) (*pb.OpenSessionResponse, error) {
	now := s.clock.Now()
	var enqueued bool
	resp, err := idempotency.Do(ctx, s.pool, now, pb.VerificationInternalService_OpenSession_FullMethodName, req.GetRequestId(), req,
		func() *pb.OpenSessionResponse { return &pb.OpenSessionResponse{} },
		func(tx pgx.Tx) (*pb.OpenSessionResponse, error) {
			enqueued = false
			if err := lockOrder(ctx, tx, spec.OrderID); err != nil {
				return nil, err
			}
			existing, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE order_id = $1 AND submission = $2`,
				spec.OrderID, spec.Submission))
			if err == nil {
				st, err := statusOf(ctx, tx, existing)
				return &pb.OpenSessionResponse{Status: st}, err
			}
			if !pg.IsNoRows(err) {
				return nil, err
			}
			var latest *int32
			if err := tx.QueryRow(ctx, `SELECT max(submission) FROM sessions WHERE order_id = $1`, spec.OrderID).Scan(&latest); err != nil {
				return nil, err
			}
			if latest != nil && *latest > spec.Submission {
				return nil, errs.FailedPrecondition(domain.ReasonStaleSubmission, "a newer submission of this order already has a session")
			}
			if err := domain.CheckOpenDeadline(now, spec.DeadlineAt); err != nil {
				return nil, err
			}
			if _, err := tx.Exec(ctx, `UPDATE sessions SET state = 'CANCELLED', closed_at = $2 WHERE order_id = $1 AND state = 'OPEN'`,
				spec.OrderID, now); err != nil {
				return nil, fmt.Errorf("supersede: %w", err)
			}
			sess := session{id: uuid.NewString(), orderID: spec.OrderID, submission: spec.Submission, state: domain.SessionOpen,
				deadlineAt: spec.DeadlineAt.UTC(), locale: spec.Locale, createdAt: now}
			if _, err := tx.Exec(ctx, `INSERT INTO sessions (id, order_id, submission, state, deadline_at, locale, created_at)
				VALUES ($1, $2, $3, 'OPEN', $4, $5, $6)`, sess.id, sess.orderID, sess.submission, sess.deadlineAt, sess.locale, now); err != nil {
				return nil, fmt.Errorf("insert session: %w", err)
			}
			for i, v := range spec.Verifiers {
				c := challenge{id: uuid.NewString(), sessionID: sess.id, verifierID: domain.VerifierID(i), phone: v.Phone,
					roles: v.Roles, generation: 1, lastSentAt: now, state: domain.ChallengePending}
				if c.roles == nil {
					c.roles = []string{}
				}
				code, err := domain.NewCode(s.rand)
				if err != nil {
					return nil, err
				}
				c.codeKeyID, c.codeHash = s.hasher.HashCode(c.id, code)
				if _, err := tx.Exec(ctx, `INSERT INTO challenges (id, session_id, verifier_id, phone, roles, code_hash, code_key_id,
					generation, last_sent_at, state) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'PENDING')`,
					c.id, c.sessionID, c.verifierID, c.phone, c.roles, c.codeHash, c.codeKeyID, c.generation, now); err != nil {
					return nil, fmt.Errorf("insert challenge: %w", err)
				}
				for _, t := range slices.Compact(slices.Sorted(slices.Values(v.Tails))) {
					kid, h := s.hasher.HashTail(c.id, t)
					if _, err := tx.Exec(ctx, `INSERT INTO challenge_id_tails (challenge_id, key_id, tail_hash) VALUES ($1, $2, $3)`,
						c.id, kid, h); err != nil {
						return nil, fmt.Errorf("insert id tail: %w", err)
					}
				}
				if err := enqueueCode(ctx, tx, now, sess, c, code); err != nil {
					return nil, err
				}
			}
			enqueued = true
			s.log.Info("session opened", logging.OrderID(sess.orderID), logging.Submission(sess.submission),
				zap.Int("verifiers", len(spec.Verifiers)), zap.Time("deadline_at", sess.deadlineAt))
			st, err := statusOf(ctx, tx, sess)
			return &pb.OpenSessionResponse{Status: st}, err
		})
	if err != nil {
		return nil, err
	}
	if enqueued {
		s.wake()
	}
	return resp, nil
}

// enqueueCode owes sms-dispatch one message carrying the plaintext code; the relay deletes the row
// once delivered, so the code does not stay in this database.
func enqueueCode(ctx context.Context, tx pgx.Tx, now time.Time, sess session, c challenge, code string) error {
	return outbox.EnqueueSensitive(ctx, tx, now, TargetSendMessage, &smsv1.SendMessageRequest{
		MessageId:  domain.MessageID(sess.id, c.verifierID, c.generation),
		Phone:      c.phone,
		Template:   smsv1.Template_TEMPLATE_VERIFICATION_CODE,
		Params:     map[string]string{"code": code, "deadline": sess.deadlineAt.Format(time.RFC3339)},
		Locale:     sess.locale,
		ExpireTime: timestamppb.New(sess.deadlineAt),
		OrderId:    sess.orderID,
	})
}

// ResendByPhone sends a new code to the pending verifier of an open session identified by phone +
// ID tail. No such verifier gets the uniform VERIFICATION_NOT_MATCHED.
func (s *Store) ResendByPhone(ctx context.Context, req *pb.ResendCodeRequest, phone, tail string) (*pb.ResendCodeResponse, error) {
	// The idempotency table keeps a hash of the request: give it keyed digests, not the phone and tail.
	fingerprint := &pb.ResendCodeRequest{RequestId: req.GetRequestId(), Phone: s.hasher.Fingerprint(phone, tail)}
	return resend(ctx, s, pb.VerificationService_ResendCode_FullMethodName, req.GetRequestId(), fingerprint,
		func() *pb.ResendCodeResponse { return &pb.ResendCodeResponse{} },
		func(r *pb.Resend) *pb.ResendCodeResponse { return &pb.ResendCodeResponse{Resend: r} },
		func(tx pgx.Tx) (session, challenge, error) {
			sessions, chs, err := lockPhone(ctx, tx, phone)
			if err != nil {
				return session{}, challenge{}, err
			}
			tails, err := loadTails(ctx, tx, chs)
			if err != nil {
				return session{}, challenge{}, err
			}
			found := -1
			for i, c := range chs {
				sess := sessions[c.sessionID]
				if s.tailMatches(c, tails[c.id], tail) && c.state == domain.ChallengePending && sess.state == domain.SessionOpen {
					// Several orders may wait on one person: the newest order's verifier gets the code.
					if found < 0 || sess.createdAt.After(sessions[chs[found].sessionID].createdAt) {
						found = i
					}
				}
			}
			if len(chs) == 0 {
				s.hasher.Burn("000000", tail)
			}
			if found < 0 {
				return session{}, challenge{}, domain.ErrNotMatched()
			}
			return sessions[chs[found].sessionID], chs[found], nil
		})
}

// ResendVerifier sends a new code to one verifier of an order's latest submission.
func (s *Store) ResendVerifier(ctx context.Context, req *pb.ResendVerifierCodeRequest) (*pb.ResendVerifierCodeResponse, error) {
	notFound := errs.NotFound(domain.ReasonVerifierNotFound, "no such verifier for this order")
	return resend(ctx, s, pb.VerificationInternalService_ResendVerifierCode_FullMethodName, req.GetRequestId(), req,
		func() *pb.ResendVerifierCodeResponse { return &pb.ResendVerifierCodeResponse{} },
		func(r *pb.Resend) *pb.ResendVerifierCodeResponse { return &pb.ResendVerifierCodeResponse{Resend: r} },
		func(tx pgx.Tx) (session, challenge, error) {
			sess, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE order_id = $1
				ORDER BY submission DESC LIMIT 1 FOR UPDATE`, req.GetOrderId()))
			if pg.IsNoRows(err) {
				return session{}, challenge{}, notFound
			}
			if err != nil {
				return session{}, challenge{}, err
			}
			c, err := scanChallenge(tx.QueryRow(ctx, `SELECT `+challengeCols+` FROM challenges
				WHERE session_id = $1 AND verifier_id = $2 FOR UPDATE`, sess.id, req.GetVerifierId()))
			if pg.IsNoRows(err) {
				return session{}, challenge{}, notFound
			}
			return sess, c, err
		})
}

// resend is the shared part: find (and lock) the verifier, apply the limits, replace the code hash,
// queue the new SMS, all under idempotency.Do so a retried request_id gets the first answer.
func resend[R proto.Message](ctx context.Context, s *Store, method, requestID string, req proto.Message,
	newResp func() R, wrap func(*pb.Resend) R, find func(pgx.Tx) (session, challenge, error)) (R, error) {
	now := s.clock.Now()
	resp, err := idempotency.Do(ctx, s.pool, now, method, requestID, req, newResp, func(tx pgx.Tx) (R, error) {
		var zero R
		sess, c, err := find(tx)
		if err != nil {
			return zero, err
		}
		if err := domain.CheckResend(now, domain.ResendState{SessionState: sess.state, ChallengeState: c.state,
			DeadlineAt: sess.deadlineAt, ResendsUsed: c.resendsUsed, LastSentAt: c.lastSentAt}, s.limits); err != nil {
			return zero, err
		}
		code, err := domain.NewCode(s.rand)
		if err != nil {
			return zero, err
		}
		// The old hash is overwritten in this transaction: from its commit on, only the new code passes.
		c.codeKeyID, c.codeHash = s.hasher.HashCode(c.id, code)
		c.generation++
		c.resendsUsed++
		c.lastSentAt = now
		if _, err := tx.Exec(ctx, `UPDATE challenges SET code_hash = $2, code_key_id = $3, generation = $4,
			resends_used = $5, last_sent_at = $6 WHERE id = $1`,
			c.id, c.codeHash, c.codeKeyID, c.generation, c.resendsUsed, now); err != nil {
			return zero, fmt.Errorf("replace code: %w", err)
		}
		if err := enqueueCode(ctx, tx, now, sess, c, code); err != nil {
			return zero, err
		}
		s.log.Info("code resent", logging.OrderID(sess.orderID), logging.Submission(sess.submission),
			zap.String("verifier_id", c.verifierID), zap.Int("generation", c.generation), logging.Phone(c.phone))
		r := &pb.Resend{OrderId: sess.orderID, VerifierId: c.verifierID,
			ResendsLeft: int32(domain.ResendsLeft(c.resendsUsed, s.limits)), DeadlineAt: timestamppb.New(sess.deadlineAt)}
		if r.ResendsLeft > 0 {
			r.NextResendTime = timestamppb.New(now.Add(s.limits.ResendInterval))
		}
		return wrap(r), nil
	})
	if err != nil {
		var zero R
		return zero, err
	}
	s.wake()
	return resp, nil
}

// CloseIfIncomplete applies the deadline to one submission: an open session at or after deadline_at
// becomes TIMED_OUT and owes filing a return (VERIFICATION_TIMEOUT); before the deadline nothing closes.
func (s *Store) CloseIfIncomplete(ctx context.Context, req *pb.CloseIfIncompleteRequest) (*pb.CloseIfIncompleteResponse, error) {
	now := s.clock.Now()
	var enqueued bool
	resp, err := idempotency.Do(ctx, s.pool, now, pb.VerificationInternalService_CloseIfIncomplete_FullMethodName, req.GetRequestId(), req,
		func() *pb.CloseIfIncompleteResponse { return &pb.CloseIfIncompleteResponse{} },
		func(tx pgx.Tx) (*pb.CloseIfIncompleteResponse, error) {
			enqueued = false
			sess, err := lockSession(ctx, tx, req.GetOrderId(), req.GetSubmission())
			if err != nil {
				return nil, err
			}
			d, err := domain.DecideClose(now, sess.state, sess.deadlineAt)
			if err != nil {
				return nil, err
			}
			if d.Return {
				if err := closeSession(ctx, tx, now, sess.id, domain.SessionTimedOut); err != nil {
					return nil, err
				}
				if err := outbox.Enqueue(ctx, tx, now, TargetReturnOrder, &filingv1.ReturnOrderRequest{
					RequestId: domain.ReturnRequestID(sess.orderID, sess.submission), OrderId: sess.orderID,
					Submission: sess.submission, Reason: filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT,
				}); err != nil {
					return nil, err
				}
				enqueued = true
				sess.state, sess.closedAt = domain.SessionTimedOut, &now
				s.log.Info("session timed out; order returned", logging.OrderID(sess.orderID), logging.Submission(sess.submission))
			}
			st, err := statusOf(ctx, tx, sess)
			return &pb.CloseIfIncompleteResponse{Closed: d.Closed, Status: st}, err
		})
	if err != nil {
		return nil, err
	}
	if enqueued {
		s.wake()
	}
	return resp, nil
}

// CancelSession closes an open session because its order was cancelled; other states stay. When the
// session does not exist yet (the cancel overtook OpenSession in the outboxes) a CANCELLED tombstone
// is written, so the late OpenSession finds it and sends no codes for a cancelled order.
func (s *Store) CancelSession(ctx context.Context, req *pb.CancelSessionRequest) (*pb.CancelSessionResponse, error) {
	now := s.clock.Now()
	return idempotency.Do(ctx, s.pool, now, pb.VerificationInternalService_CancelSession_FullMethodName, req.GetRequestId(), req,
		func() *pb.CancelSessionResponse { return &pb.CancelSessionResponse{} },
		func(tx pgx.Tx) (*pb.CancelSessionResponse, error) {
			if err := lockOrder(ctx, tx, req.GetOrderId()); err != nil {
				return nil, err
			}
			sess, err := lockSession(ctx, tx, req.GetOrderId(), req.GetSubmission())
			switch {
			case errs.Reason(err) == domain.ReasonSessionNotFound:
				sess = session{id: uuid.NewString(), orderID: req.GetOrderId(), submission: req.GetSubmission(),
					state: domain.SessionCancelled, deadlineAt: now, locale: domain.DefaultLocale, createdAt: now, closedAt: &now}
				if _, err := tx.Exec(ctx, `INSERT INTO sessions (id, order_id, submission, state, deadline_at, locale, created_at, closed_at)
					VALUES ($1, $2, $3, 'CANCELLED', $4, $5, $4, $4)`, sess.id, sess.orderID, sess.submission, now, sess.locale); err != nil {
					return nil, fmt.Errorf("insert cancelled session: %w", err)
				}
			case err != nil:
				return nil, err
			case sess.state == domain.SessionOpen:
				if err := closeSession(ctx, tx, now, sess.id, domain.SessionCancelled); err != nil {
					return nil, err
				}
				sess.state, sess.closedAt = domain.SessionCancelled, &now
			}
			s.log.Info("session cancelled", logging.OrderID(sess.orderID), logging.Submission(sess.submission),
				zap.String("state", string(sess.state)))
			st, err := statusOf(ctx, tx, sess)
			return &pb.CancelSessionResponse{Status: st}, err
		})
}

func lockSession(ctx context.Context, tx pgx.Tx, orderID string, submission int32) (session, error) {
	sess, err := scanSession(tx.QueryRow(ctx, `SELECT `+sessionCols+` FROM sessions WHERE order_id = $1 AND submission = $2 FOR UPDATE`,
		orderID, submission))
	if pg.IsNoRows(err) {
		return session{}, errs.NotFound(domain.ReasonSessionNotFound, "no verification session for this order submission")
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
			return errs.NotFound(domain.ReasonSessionNotFound, "no verification session for this order")
		}
		if err != nil {
			return err
		}
		st, err = statusOf(ctx, tx, sess)
		return err
	})
	return st, err
}

func statusOf(ctx context.Context, tx pgx.Tx, sess session) (*pb.VerificationStatus, error) {
	chs, err := collectChallenges(tx.Query(ctx, `SELECT `+challengeCols+` FROM challenges WHERE session_id = $1
		ORDER BY length(verifier_id), verifier_id`, sess.id))
	if err != nil {
		return nil, fmt.Errorf("load challenges: %w", err)
	}
	st := &pb.VerificationStatus{OrderId: sess.orderID, Submission: sess.submission, State: sessionStateProto(sess.state),
		DeadlineAt: timestamppb.New(sess.deadlineAt)}
	for _, c := range chs {
		v := &pb.VerifierStatus{VerifierId: c.verifierID, PhoneMasked: pii.MaskPhone(c.phone), Roles: c.roles,
			State: challengeStateProto(c.state), FailedAttempts: int32(c.failed), ResendsUsed: int32(c.resendsUsed),
			LastSentTime: timestamppb.New(c.lastSentAt)}
		if c.passedAt != nil {
			v.PassedTime = timestamppb.New(*c.passedAt)
		}
		st.Verifiers = append(st.Verifiers, v)
	}
	return st, nil
}

func sessionStateProto(s domain.SessionState) pb.SessionState {
	switch s {
	case domain.SessionOpen:
		return pb.SessionState_SESSION_STATE_OPEN
	case domain.SessionPassed:
		return pb.SessionState_SESSION_STATE_PASSED
	case domain.SessionFailed:
		return pb.SessionState_SESSION_STATE_FAILED
	case domain.SessionTimedOut:
		return pb.SessionState_SESSION_STATE_TIMED_OUT
	case domain.SessionCancelled:
		return pb.SessionState_SESSION_STATE_CANCELLED
	}
	return pb.SessionState_SESSION_STATE_UNSPECIFIED
}

func challengeStateProto(s domain.ChallengeState) pb.ChallengeState {
	switch s {
	case domain.ChallengePending:
		return pb.ChallengeState_CHALLENGE_STATE_PENDING
	case domain.ChallengePassed:
		return pb.ChallengeState_CHALLENGE_STATE_PASSED
	case domain.ChallengeLocked:
		return pb.ChallengeState_CHALLENGE_STATE_LOCKED
	}
	return pb.ChallengeState_CHALLENGE_STATE_UNSPECIFIED
}
