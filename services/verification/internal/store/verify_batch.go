package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/batch"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// Verify calls are served in batches (pkg/batch, group commit): concurrent calls share one
// transaction in two pipelined round trips on one connection (pg.Pipeline). The first is BEGIN + the
// lock query of every phone of the batch (LockPhone); the clock is read and the calls decided once
// those rows are back, under the locks, one after another in arrival order on the locked rows (each
// decision sees the earlier ones' effects, so the batch is the same as the calls made one by one);
// the second is every call's writes (outbox rows included) + COMMIT. A failing statement makes
// PostgreSQL skip the rest of its batch (COMMIT too) and leaves the transaction aborted; pg.Pipeline
// then rolls it back, or closes the connection, so the pool never gets a connection inside a
// transaction. A batch that fails as a whole (a deadlock, a lost connection) is retried call by call,
// each like pg.InTx, unless its outcome is unknown (verifyBatch).

// verifyResult is what one committed Verify attempt did; logs and callbacks run once, after commit.
type verifyResult struct {
	resp     *pb.VerifyResponse
	err      error // a refused check (the phone is locked)
	enqueued bool
	passed   *domain.Challenge
	sess     domain.Session
	locked   []lockedVerifier
}

type lockedVerifier struct {
	sess domain.Session
	c    domain.Challenge
}

// verifyMaxBatch bounds a batch of Verify calls, verifyFlights the batches in flight at once, and
// verifyTimeout one batch (it runs detached from any one caller's context). One flight: the calls
// that arrive while a batch runs make the next one, twice as big as with two flights, and the
// database's work per call falls with the batch (benchmark, same build alternating: 0.509 and
// 0.518 of pgbench against 0.478 and 0.476 with two; p99 20-24 ms against 24-28 ms).
const (
	verifyMaxBatch = 64
	verifyFlights  = 1
	verifyTimeout  = 15 * time.Second
)

// Verify checks one entry. A pass answers PASSED_WAITING_FOR_OTHERS or ALL_PASSED; every mismatch
// commits its failure counts and then answers the uniform VERIFICATION_NOT_MATCHED.
func (s *Store) Verify(ctx context.Context, in domain.VerifyInput) (*pb.VerifyResponse, error) {
	res, err := s.verifies.Do(ctx, in)
	if err != nil {
		return nil, err
	}
	s.reportVerify(res)
	if res.enqueued {
		s.wake()
	}
	if res.err != nil {
		return nil, res.err
	}
	if res.resp == nil {
		return nil, domain.ErrNotMatched()
	}
	return res.resp, nil
}

// verifyBatch serves a batch of Verify calls (the Run of s.verifies). A batch that failed is run
// again call by call only when it certainly did not commit: Verify carries no request id, so a
// failure counted twice, or a pass answered as a mismatch on its second run, could not be told
// apart. When the outcome is unknown every call gets the error (Unavailable, or DeadlineExceeded when
// the batch ran out of time), as a lone call would.
func (s *Store) verifyBatch(ctx context.Context, ins []domain.VerifyInput) []batch.Result[verifyResult] {
	ctx, cancel := context.WithTimeout(ctx, verifyTimeout)
	defer cancel()
	all := func(ctx context.Context, ins []domain.VerifyInput) ([]batch.Result[verifyResult], error) {
		res, err := s.verifyAll(ctx, ins)
		if errors.Is(err, pg.ErrOutcomeUnknown) {
			res = make([]batch.Result[verifyResult], len(ins))
			for i := range res {
				res[i].Err = err
			}
			return res, nil
		}
		return res, err
	}
	return batch.AllOrEach(ctx, ins, nil, all, s.verifyOne)
}

// verifyOne runs one call alone, retrying serialization failures and deadlocks like pg.InTx (never
// an unknown outcome: pg.Retry does not repeat one).
func (s *Store) verifyOne(ctx context.Context, in domain.VerifyInput) batch.Result[verifyResult] {
	var r []batch.Result[verifyResult]
	err := pg.Retry(ctx, func() error {
		var err error
		r, err = s.verifyAll(ctx, []domain.VerifyInput{in})
		return err
	})
	if err != nil {
		return batch.Result[verifyResult]{Err: err}
	}
	return r[0]
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

// verifyAll is one transaction for the calls ins, in two round trips (pg.Pipeline): BEGIN, generic
// plans and the locks of every phone of the batch; the decisions, then the writes and COMMIT.
func (s *Store) verifyAll(ctx context.Context, ins []domain.VerifyInput) ([]batch.Result[verifyResult], error) {
	phones := make([]string, 0, len(ins))
	for _, in := range ins {
		phones = append(phones, in.Phone)
	}
	slices.Sort(phones)
	phones = slices.Compact(phones)
	var (
		sessions map[string]domain.Session
		chs      []domain.Challenge
		tails    map[string][]domain.TailHash
		out      []batch.Result[verifyResult]
		passes   []int
		all      map[string]bool
		fails    = map[string][]domain.PhoneFailure{}
	)
	read := func(b *pgx.Batch) error {
		b.Queue(pg.GenericPlans)
		b.Queue(queries.LockPhone, phones).Query(func(rows pgx.Rows) error {
			var err error
			sessions, chs, tails, err = scanLockRows(rows)
			return err
		})
		// In the same round trip, after the locks: the budget of every phone of the batch.
		s.queuePhoneFailures(b, phones, fails)
		return nil
	}
	write := func(b *pgx.Batch) error {
		// Read after the locks: a check that queued behind another one across deadline_at is late.
		now := s.clock.Now()
		var err error
		out, passes, all, err = s.queueVerifies(b, now, ins, sessions, chs, tails, fails)
		return err
	}
	if err := pg.Pipeline(ctx, s.pool, read, write); err != nil {
		// An unknown outcome (pg.ErrOutcomeUnknown) stays recognisable: verifyBatch never runs it again.
		return nil, fmt.Errorf("verify: %w", err)
	}
	// A session that all passed is ALL_PASSED for its last pass in the batch, as if the calls had run
	// one by one; its earlier passes were waiting for others.
	last := map[string]int{}
	for _, k := range passes {
		last[out[k].Value.sess.ID] = k
	}
	for _, k := range passes {
		res := &out[k].Value
		done := all[res.sess.ID] && last[res.sess.ID] == k
		res.enqueued = done
		res.resp = convert.PassAnswer(res.sess, done)
	}
	return out, nil
}

// queueVerifies decides the calls ins one after another in arrival order on the locked rows, each
// seeing the earlier ones' effects, and queues their writes on b. It returns the calls' results
// (answers of the passes are set after commit, from all), the indexes of the passes and the map
// that PassAll fills.
func (s *Store) queueVerifies(b *pgx.Batch, now time.Time, ins []domain.VerifyInput, sessions map[string]domain.Session,
	chs []domain.Challenge, tails map[string][]domain.TailHash, fails map[string][]domain.PhoneFailure) ([]batch.Result[verifyResult], []int, map[string]bool, error) {
	byPhone := map[string][]int{} // indexes into chs, in challenge id order
	for i, c := range chs {
		byPhone[c.Phone] = append(byPhone[c.Phone], i)
	}

	out := make([]batch.Result[verifyResult], len(ins))
	var passes []int // indexes into ins of the calls that pass, in arrival order
	var counted failureRows
	var counts failureCounts
	for k, in := range ins {
		idx := byPhone[in.Phone]
		mine := make([]domain.Challenge, len(idx)) // every pending challenge of the phone, whatever its tenant
		for j, i := range idx {
			mine[j] = chs[i]
		}
		visible := domain.Visible(in.Scope, sessions, mine)
		cands := make([]domain.Candidate, len(visible))
		for j, i := range visible {
			c := mine[i]
			cands[j] = s.hasher.Candidate(sessions[c.SessionID], c, tails[c.ID], in.Code, in.Tail, in.Link)
		}
		if len(visible) == 0 {
			s.hasher.Burn(in.Code, in.Tail)
		}
		pc := domain.DecidePhoneCheck(now, domain.DecideVerify(now, cands, s.limits.MaxFailedAttempts), fails[in.Phone], s.limits)
		res := &out[k].Value
		if err := pc.Err(); err != nil {
			res.err = err
			continue
		}
		if pc.Verify.Pass < 0 {
			// The later calls of the batch see this call's effects, as if it had committed first.
			if pc.Failure != nil {
				fails[in.Phone] = append(fails[in.Phone], *pc.Failure)
				counted.add(s, in.Phone, *pc.Failure)
			}
			e := domain.ApplyPhoneCheck(pc, sessions, mine, visible)
			for _, i := range e.Changed {
				chs[idx[i]] = mine[i]
			}
			locked, err := s.queueMismatch(b, now, in.Phone, sessions, mine, e, &counts)
			if err != nil {
				return nil, nil, nil, err
			}
			res.locked, res.enqueued = locked, len(e.Returned) > 0
			continue
		}
		j := visible[pc.Verify.Pass]
		c := mine[j]
		res.passed, res.sess = &c, sessions[c.SessionID]
		passes = append(passes, k)
		// A later call of the batch for this verifier finds it passed. The session's other pending
		// challenges, if any, are still pending, so it stays open for them.
		chs[idx[j]].State = domain.ChallengePassed
	}
	counted.queue(s, b, now)
	counts.queue(b)
	all := map[string]bool{} // session id -> every challenge passed, from PassAll
	if len(passes) > 0 {
		if err := s.queuePasses(b, now, out, passes, all); err != nil {
			return nil, nil, nil, err
		}
	}
	return out, passes, all, nil
}

// queuePasses queues, on b, PassAll for the passes of calls ks of out (each with its challenge
// and session set); the answer goes to all, by session id.
func (s *Store) queuePasses(b *pgx.Batch, now time.Time, out []batch.Result[verifyResult], ks []int, all map[string]bool) error {
	var chIDs, obSessions []string
	var ob outbox.Rows
	rowsOf := map[string]int{} // session id -> outbox rows it owes when it closes
	for _, k := range ks {
		res := out[k].Value
		chIDs = append(chIDs, res.passed.ID)
		if _, ok := rowsOf[res.sess.ID]; ok {
			continue
		}
		n, err := ob.Add(s.keys, convert.PassedMessages(res.sess))
		if err != nil {
			return err
		}
		rowsOf[res.sess.ID] = n
		for range n {
			obSessions = append(obSessions, res.sess.ID)
		}
	}
	b.Queue(queries.PassAll, chIDs, now, obSessions, ob.Targets, ob.Payloads, ob.Sensitive, ob.KeyIDs).Query(func(rows pgx.Rows) error {
		var want, written int64
		for rows.Next() {
			var id string
			var allPassed, closed bool
			if err := rows.Scan(&id, &allPassed, &closed, &written); err != nil {
				return fmt.Errorf("pass challenges: %w", err)
			}
			if allPassed != closed {
				return fmt.Errorf("pass challenges: session %s all passed %v, closed %v", id, allPassed, closed)
			}
			all[id] = allPassed
			if closed {
				want += int64(rowsOf[id])
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("pass challenges: %w", err)
		}
		if len(all) != len(rowsOf) || written != want {
			return fmt.Errorf("pass challenges: %d of %d sessions answered, %d outbox rows for %d owed", len(all), len(rowsOf), written, want)
		}
		return nil
	})
	return nil
}
