package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// Verify runs in two pipelined round trips on one connection instead of BEGIN, lock, write, COMMIT
// each on its own: the first batch is BEGIN + the lock query (lockPhoneSQL); the clock is read and the
// decision taken once those rows are back, under the locks; the second batch is the writes (outbox rows
// included) + COMMIT. A failing statement makes PostgreSQL skip the rest of its batch (COMMIT too) and
// leaves the transaction aborted; release then rolls it back, or closes the connection, so the pool
// never gets a connection inside a transaction. Serialization failures and deadlocks retry the whole
// attempt like pg.InTx.

// passSQL marks challenge $1 passed at $2 and answers whether every challenge of its session has now
// passed; when so it also closes the session ($3) as PASSED and writes the session's outbox rows
// (targets $4, payloads $5, sensitive flags $6, in array order), all in one statement. The statement's
// snapshot is taken under the session lock, so the other challenges' states are the committed ones; the
// CTE's own update is not visible to the outer query, hence "OR c.id = $1".
const passSQL = `WITH up AS (
		UPDATE challenges SET state = 'PASSED', passed_at = $2 WHERE id = $1 RETURNING session_id
	), agg AS (
		SELECT coalesce(bool_and(c.state = 'PASSED' OR c.id = $1), false) AS all_passed
		FROM challenges c WHERE c.session_id = (SELECT session_id FROM up)
	), closed AS (
		UPDATE sessions SET state = 'PASSED', closed_at = $2 WHERE id = $3 AND (SELECT all_passed FROM agg)
		RETURNING id
	), ob AS (
		INSERT INTO outbox (target, payload, created_at, available_at, sensitive)
		SELECT t.target, t.payload, $2, $2, t.sensitive
		FROM unnest($4::text[], $5::bytea[], $6::boolean[]) WITH ORDINALITY AS t(target, payload, sensitive, n)
		WHERE EXISTS (SELECT 1 FROM closed)
		ORDER BY t.n
		RETURNING 1
	)
	SELECT all_passed, (SELECT count(*) FROM closed), (SELECT count(*) FROM ob) FROM agg`

// outboxRows marshals effects for the outbox, in order.
func outboxRows(effects []domain.Effect) (targets []string, payloads [][]byte, sensitive []bool, err error) {
	for _, e := range effects {
		p, err := proto.Marshal(e.Msg)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("outbox: marshal %s: %w", e.Target, err)
		}
		targets = append(targets, e.Target)
		payloads = append(payloads, p)
		sensitive = append(sensitive, e.Sensitive)
	}
	return targets, payloads, sensitive, nil
}

// verifyResult is what one committed Verify attempt did; logs and callbacks run once, after commit.
type verifyResult struct {
	resp     *pb.VerifyResponse
	enqueued bool
	passed   *domain.Challenge
	sess     domain.Session
	locked   []lockedVerifier
}

type lockedVerifier struct {
	sess domain.Session
	c    domain.Challenge
}

// Verify checks one entry. A pass answers PASSED_WAITING_FOR_OTHERS or ALL_PASSED; every mismatch
// commits its failure counts and then answers the uniform VERIFICATION_NOT_MATCHED.
func (s *Store) Verify(ctx context.Context, in domain.VerifyInput) (*pb.VerifyResponse, error) {
	var res verifyResult
	err := pg.Retry(ctx, func() error {
		var err error
		res, err = s.verifyOnce(ctx, in)
		return err
	})
	if err != nil {
		return nil, err
	}
	s.reportVerify(res)
	if res.enqueued {
		s.wake()
	}
	if res.resp == nil {
		return nil, domain.ErrNotMatched()
	}
	return res.resp, nil
}

func (s *Store) reportVerify(res verifyResult) {
	if c := res.passed; c != nil {
		s.log.Info("verifier passed", logging.OrderID(res.sess.OrderID), logging.Submission(res.sess.Submission),
			zap.String("verifier_id", c.VerifierID), logging.Phone(c.Phone))
		if res.enqueued {
			s.log.Info("session passed", logging.OrderID(res.sess.OrderID), logging.Submission(res.sess.Submission))
		}
	}
	for _, l := range res.locked {
		if s.OnLock != nil {
			s.OnLock()
		}
		s.log.Warn("verifier locked after too many failed attempts; order returned", logging.OrderID(l.sess.OrderID),
			logging.Submission(l.sess.Submission), zap.String("verifier_id", l.c.VerifierID), logging.Phone(l.c.Phone))
	}
}

// verifyOnce is one transaction of Verify in two round trips on one acquired connection.
func (s *Store) verifyOnce(ctx context.Context, in domain.VerifyInput) (verifyResult, error) {
	var res verifyResult
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return res, err
	}
	defer pg.Release(ctx, conn)

	// Round trip 1: BEGIN and the locks.
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	b.Queue(lockPhoneSQL, in.Phone)
	br := conn.SendBatch(ctx, b)
	sessions, chs, tails, err := readLockBatch(br)
	if err != nil {
		return res, err
	}

	// Read after the locks: a check that queued behind another one across deadline_at is late.
	now := s.clock.Now()
	cands := make([]domain.Candidate, len(chs))
	for i, c := range chs {
		cands[i] = s.hasher.Candidate(sessions[c.SessionID], c, tails[c.ID], in.Code, in.Tail)
	}
	if len(chs) == 0 {
		s.hasher.Burn(in.Code, in.Tail)
	}
	d := domain.DecideVerify(now, cands, s.limits.MaxFailedAttempts)

	// Round trip 2: the writes and COMMIT.
	b = &pgx.Batch{}
	var passRow *pgx.QueuedQuery
	var all bool
	var closed, written int64
	if d.Pass >= 0 {
		c := chs[d.Pass]
		sess := sessions[c.SessionID]
		res.passed, res.sess = &c, sess
		effects := domain.PassedEffects(sess)
		targets, payloads, sensitive, err := outboxRows(effects)
		if err != nil {
			return res, err
		}
		passRow = b.Queue(passSQL, c.ID, now, sess.ID, targets, payloads, sensitive)
		passRow.QueryRow(func(row pgx.Row) error {
			if err := row.Scan(&all, &closed, &written); err != nil {
				return fmt.Errorf("pass challenge: %w", err)
			}
			if all != (closed == 1) || (closed == 1) != (written == int64(len(effects))) {
				return fmt.Errorf("pass challenge: all passed %v but %d sessions closed, %d outbox rows", all, closed, written)
			}
			return nil
		})
	} else {
		locked, err := queueFailures(b, now, sessions, chs, d.Failures)
		if err != nil {
			return res, err
		}
		res.locked, res.enqueued = locked, len(locked) > 0
	}
	b.Queue(`COMMIT`)
	// Close reads every result in order (running the QueryRow callback) and returns the first error.
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return res, fmt.Errorf("verify: %w", err)
	}
	if passRow != nil {
		res.enqueued = all
		res.resp = domain.PassAnswer(res.sess, all)
	}
	return res, nil
}

// readLockBatch reads the BEGIN and lockPhoneSQL results of the first batch and closes it.
func readLockBatch(br pgx.BatchResults) (map[string]domain.Session, []domain.Challenge, map[string][]domain.TailHash, error) {
	var sessions map[string]domain.Session
	var chs []domain.Challenge
	var tails map[string][]domain.TailHash
	_, err := br.Exec()
	if err != nil {
		err = fmt.Errorf("begin: %w", err)
	} else {
		var rows pgx.Rows
		rows, err = br.Query()
		if err != nil {
			err = fmt.Errorf("lock phone: %w", err)
		} else {
			sessions, chs, tails, err = scanLockRows(rows)
		}
	}
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("lock phone: %w", cerr)
	}
	if err != nil {
		return nil, nil, nil, err
	}
	return sessions, chs, tails, nil
}
