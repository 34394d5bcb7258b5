package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/batch"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// CloseIfIncomplete applies the deadline to one submission: an open session at or after deadline_at
// becomes TIMED_OUT and owes filing a return (VERIFICATION_TIMEOUT); before the deadline nothing closes.
//
// The deadline sweeper fires many timers at once (an order's 24 h window closes for every order
// submitted in the same second): concurrent calls are served together (pkg/batch), one transaction
// and two round trips for the whole batch, each call keeping its own idempotency and answer.
func (s *Store) CloseIfIncomplete(ctx context.Context, req *pb.CloseIfIncompleteRequest) (*pb.CloseIfIncompleteResponse, error) {
	if err := idempotency.CheckRequestID(req.GetRequestId()); err != nil {
		return nil, err
	}
	return s.closes.Do(ctx, req)
}

const closeMethod = pb.VerificationInternalService_CloseIfIncomplete_FullMethodName

// closeTimeout bounds one batch of closes: it runs detached from any one caller's context.
const closeTimeout = 15 * time.Second

type sessionKey struct {
	orderID    string
	submission int32
}

// closeBatch serves a batch of CloseIfIncomplete calls. Calls that name a request id or a session
// already in the batch run after it, alone: in one transaction the second would not see the first's
// close. A batch that fails as a whole (a deadlock with another replica, a lost connection) is
// retried call by call, so that one call's error is only its own.
func (s *Store) closeBatch(ctx context.Context, reqs []*pb.CloseIfIncompleteRequest) []batch.Result[*pb.CloseIfIncompleteResponse] {
	ctx, cancel := context.WithTimeout(ctx, closeTimeout)
	defer cancel()
	key := func(r *pb.CloseIfIncompleteRequest) []string {
		keys := []string{fmt.Sprintf("session %s %d", r.GetOrderId(), r.GetSubmission())}
		if r.GetRequestId() != "" {
			keys = append(keys, "request "+r.GetRequestId())
		}
		return keys
	}
	return batch.AllOrEach(ctx, reqs, key, s.closeAll, s.closeOne)
}

// closeOne runs one call alone.
func (s *Store) closeOne(ctx context.Context, r *pb.CloseIfIncompleteRequest) batch.Result[*pb.CloseIfIncompleteResponse] {
	res, err := s.closeAll(ctx, []*pb.CloseIfIncompleteRequest{r})
	if err != nil {
		return batch.Result[*pb.CloseIfIncompleteResponse]{Err: err}
	}
	return res[0]
}

// closeAll closes, in one transaction (pg.Pipeline), the sessions of reqs (distinct request ids and
// sessions): BEGIN and the idempotency locks and lookups and the sessions, locked in id order, with
// their challenges; the decisions in Go (domain.DecideClose), the clock read after the locks; the
// writes (sessions, outbox, idempotency answers) and COMMIT. The error is the whole batch's.
func (s *Store) closeAll(ctx context.Context, reqs []*pb.CloseIfIncompleteRequest) ([]batch.Result[*pb.CloseIfIncompleteResponse], error) {
	ids := make([]string, len(reqs))
	keys := make([]sessionKey, len(reqs))
	for i, r := range reqs {
		ids[i], keys[i] = r.GetRequestId(), sessionKey{r.GetOrderId(), r.GetSubmission()}
	}
	sorted := slices.Clone(keys)
	slices.SortFunc(sorted, func(a, b sessionKey) int {
		if c := strings.Compare(a.orderID, b.orderID); c != 0 {
			return c
		}
		return int(a.submission - b.submission)
	})
	orders, subs := make([]string, len(sorted)), make([]int32, len(sorted))
	for i, k := range sorted {
		orders[i], subs[i] = k.orderID, k.submission
	}

	stored := map[string]idempotency.Stored{}
	sessions := map[sessionKey]domain.Session{}
	challenges := map[string][]domain.Challenge{}
	var (
		out    []batch.Result[*pb.CloseIfIncompleteResponse]
		closed []domain.Session
	)
	read := func(reads *pgx.Batch) error {
		reads.Queue(pg.GenericPlans)
		idempotency.QueueLocks(reads, closeMethod, ids)
		idempotency.QueueLookup(reads, closeMethod, ids, stored)
		// Locked in id order, as every other writer locks them (queries.sql).
		reads.Queue(queries.LockClosing, orders, subs).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				sess, err := scanSession(rows)
				if err != nil {
					return err
				}
				sessions[sessionKey{sess.OrderID, sess.Submission}] = sess
			}
			return rows.Err()
		})
		reads.Queue(queries.ClosingChallenges, orders, subs).
			Query(func(rows pgx.Rows) error {
				for rows.Next() {
					c, err := scanChallenge(rows)
					if err != nil {
						return err
					}
					challenges[c.SessionID] = append(challenges[c.SessionID], c)
				}
				return rows.Err()
			})
		return nil
	}
	write := func(writes *pgx.Batch) error {
		now := s.clock.Now()
		out = make([]batch.Result[*pb.CloseIfIncompleteResponse], len(reqs))
		closed = nil
		var (
			closing []string
			msgs    []outbox.Message
			answers []idempotency.Answer
		)
		for i, r := range reqs {
			if st, ok := stored[r.GetRequestId()]; ok && r.GetRequestId() != "" {
				resp := &pb.CloseIfIncompleteResponse{}
				if _, err := idempotency.Replay(st, r, resp); err != nil {
					out[i].Err = err
				} else {
					out[i].Value = resp
				}
				continue
			}
			sess, ok := sessions[keys[i]]
			if !ok {
				out[i].Err = domain.ErrSessionNotFound()
				continue
			}
			d, err := domain.DecideClose(now, sess.State, sess.DeadlineAt)
			if err != nil {
				out[i].Err = err
				continue
			}
			if d.Return {
				closing = append(closing, sess.ID)
				msgs = append(msgs, convert.TimedOutMessages(sess)...)
				sess.State = domain.SessionTimedOut
				closed = append(closed, sess)
			}
			resp := &pb.CloseIfIncompleteResponse{Closed: d.Closed, Status: convert.Status(sess, challenges[sess.ID])}
			out[i].Value = resp
			answers = append(answers, idempotency.Answer{RequestID: r.GetRequestId(), Req: r, Resp: resp})
		}
		if len(closing) > 0 {
			writes.Queue(queries.TimeOut, closing, string(domain.SessionTimedOut), now)
			if err := outbox.QueueInsert(writes, s.keys, now, msgs); err != nil {
				return err
			}
		}
		return idempotency.QueueSave(writes, now, closeMethod, answers)
	}
	if err := pg.Pipeline(ctx, s.pool, read, write); err != nil {
		return nil, fmt.Errorf("close sessions: %w", err)
	}
	for _, sess := range closed {
		s.log.Info("session timed out; order returned", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission))
	}
	if len(closed) > 0 {
		s.wake()
	}
	return out, nil
}
