package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/deadline/internal/convert"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

// Schedule creates the timer of one submission, or returns the existing one (a repeat with another
// request_id, or a placeholder a cancel left: see Cancel). A different due time for an existing timer
// is a conflict.
//
// ScheduleDeadline and CancelDeadline arrive from the other services' outbox relays, up to 32 at a
// time: concurrent calls are served together (pkg/batch), one transaction and two round trips for
// the whole batch, each call keeping its own idempotency and answer.
func (s *Store) Schedule(ctx context.Context, requestID string, req proto.Message, k domain.Key, due time.Time) (domain.Deadline, error) {
	if err := idempotency.CheckRequestID(requestID); err != nil {
		return domain.Deadline{}, err
	}
	return s.timers.Do(ctx, timerCall{method: methodSchedule, requestID: requestID, req: req, key: k.Close(), due: due})
}

// ScheduleNoon creates the noon resend timer of one submission (due at resend), or returns the
// existing one, as Schedule does; domain.Insert decides whether it is born cancelled.
func (s *Store) ScheduleNoon(ctx context.Context, requestID string, req proto.Message, k domain.Key, resend time.Time) (domain.Deadline, error) {
	if err := idempotency.CheckRequestID(requestID); err != nil {
		return domain.Deadline{}, err
	}
	return s.timers.Do(ctx, timerCall{method: methodNoon, requestID: requestID, req: req, key: k.Noon(), due: resend})
}

// Cancel cancels a pending timer and the submission's pending noon resend timer; a fired or
// cancelled one is returned unchanged. A submission not
// scheduled yet (the cancel overtook the schedule) gets a CANCELLED placeholder, which the late
// schedule then returns instead of arming a timer.
func (s *Store) Cancel(ctx context.Context, requestID string, req proto.Message, k domain.Key) (domain.Deadline, error) {
	if err := idempotency.CheckRequestID(requestID); err != nil {
		return domain.Deadline{}, err
	}
	return s.timers.Do(ctx, timerCall{method: methodCancel, requestID: requestID, req: req, key: k.Close()})
}

type timerCall struct {
	method    string // methodSchedule, methodNoon or methodCancel
	requestID string
	req       proto.Message
	key       domain.Key
	due       time.Time // Schedule only
}

// methods are the timer calls in the order their idempotency rows are locked.
var methods = []string{methodSchedule, methodNoon, methodCancel}

// timerTimeout bounds one batch: it runs detached from any one caller's context.
const timerTimeout = 15 * time.Second

// timerBatch serves a batch of Schedule and Cancel calls. Calls that share a request id or an order
// with an earlier call of the batch run after it, alone (a schedule supersedes the order's other
// timers, so one order's calls must see each other's writes). A batch that fails as a whole (a
// deadlock, a lost connection, a concurrent insert of the same timer) is retried call by call, as
// idempotency.Do retries one call, so that one call's error is only its own.
func (s *Store) timerBatch(ctx context.Context, calls []timerCall) []batch.Result[domain.Deadline] {
	ctx, cancel := context.WithTimeout(ctx, timerTimeout)
	defer cancel()
	key := func(c timerCall) []string {
		keys := []string{"order " + c.key.OrderID}
		if c.requestID != "" {
			keys = append(keys, "request "+c.method+" "+c.requestID)
		}
		return keys
	}
	return batch.AllOrEach(ctx, calls, key, s.timerAll, s.timerOne)
}

// timerOne runs one call alone, retrying like idempotency.Do: serialization failures and deadlocks
// (pg.Retry), and a unique violation of a twin that committed first (the retry reads its answer).
func (s *Store) timerOne(ctx context.Context, c timerCall) batch.Result[domain.Deadline] {
	for range 2 {
		var res []batch.Result[domain.Deadline]
		err := pg.Retry(ctx, func() error {
			var err error
			res, err = s.timerAll(ctx, []timerCall{c})
			return err
		})
		if pg.IsUniqueViolation(err) {
			continue
		}
		if err != nil {
			return batch.Result[domain.Deadline]{Err: err}
		}
		return res[0]
	}
	return batch.Result[domain.Deadline]{Err: errs.AlreadyExists(domain.ReasonConflict, "this submission was scheduled concurrently")}
}

// timerAll runs calls (distinct request ids and orders) in one transaction (pg.Pipeline): BEGIN and
// the idempotency locks (Schedule's, then Cancel's, each sorted) and lookups, the order locks (the
// advisory lock per order, sorted) and every timer of those orders, locked in key order as the
// sweeper's MarkFiredBatch locks them; the decisions in Go (domain.Insert, Reschedule, Cancel); the
// writes (new timers, changed timers, idempotency answers) and COMMIT.
func (s *Store) timerAll(ctx context.Context, calls []timerCall) ([]batch.Result[domain.Deadline], error) {
	idsByMethod := map[string][]string{}
	var orders []string
	for _, c := range calls {
		idsByMethod[c.method] = append(idsByMethod[c.method], c.requestID)
		orders = append(orders, c.key.OrderID)
	}
	slices.SortFunc(orders, strings.Compare) // byte order: COLLATE "C", as the sweeper locks
	orders = slices.Compact(orders)

	stored := map[string]map[string]idempotency.Stored{}
	timers := map[string][]domain.Deadline{} // by order, in submission order
	read := func(reads *pgx.Batch) error {
		reads.Queue(pg.GenericPlans)
		for _, m := range methods {
			if ids := idsByMethod[m]; len(ids) > 0 {
				stored[m] = map[string]idempotency.Stored{}
				idempotency.QueueLocks(reads, m, ids)
				idempotency.QueueLookup(reads, m, ids, stored[m])
			}
		}
		reads.Queue(queries.LockOrders, orders)
		reads.Queue(queries.LockTimers, orders).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				d, err := scan(rows)
				if err != nil {
					return err
				}
				timers[d.OrderID] = append(timers[d.OrderID], d)
			}
			return rows.Err()
		})
		return nil
	}
	var out []batch.Result[domain.Deadline]
	write := func(writes *pgx.Batch) error {
		// The clock is read after the locks: a batch that waited for another change of an order records
		// a later time than that change.
		now := domain.NormalizeTime(s.clock.Now())
		out = make([]batch.Result[domain.Deadline], len(calls))
		var (
			inserts []domain.Deadline
			changed = map[domain.Key]domain.Deadline{}
			answers = map[string][]idempotency.Answer{}
		)
		for i, c := range calls {
			if st, ok := stored[c.method][c.requestID]; ok && c.requestID != "" {
				resp := &deadlinev1.Deadline{}
				if _, err := idempotency.Replay(st, c.req, resp); err != nil {
					out[i].Err = err
				} else {
					out[i].Value = convert.FromProto(resp)
				}
				continue
			}
			existing, found := find(timers[c.key.OrderID], c.key)
			var d domain.Deadline
			var err error // this call's own: a refusal of an earlier call must not carry over
			switch {
			case c.method != methodCancel && found:
				d, err = domain.Reschedule(existing, c.due)
			case c.method == methodCancel && found:
				var ch bool
				if d, ch = domain.Cancel(existing); ch {
					changed[d.Key] = d
				}
			default: // a new timer: the schedule's, or the placeholder of a cancel that overtook it
				d = domain.New(c.key, c.due, now)
				if c.method == methodCancel {
					d = domain.Placeholder(c.key, now)
				}
				var superseded []domain.Deadline
				d, superseded = domain.Insert(d, timers[c.key.OrderID])
				inserts = append(inserts, d)
				for _, o := range superseded {
					changed[o.Key] = o
				}
			}
			if err != nil {
				out[i].Err = err
				continue
			}
			if c.method == methodCancel { // the submission's noon resend goes with its deadline
				if noon, ok := find(timers[c.key.OrderID], c.key.Noon()); ok {
					if noon, ch := domain.Cancel(noon); ch {
						changed[noon.Key] = noon
					}
				}
			}
			// The answer is what a replay of it will be: the stored proto, converted back.
			resp := convert.ToProto(d)
			out[i].Value = convert.FromProto(resp)
			answers[c.method] = append(answers[c.method], idempotency.Answer{RequestID: c.requestID, Req: c.req, Resp: resp})
		}
		queueTimerWrites(writes, inserts, changed)
		for _, m := range methods {
			if err := idempotency.QueueSave(writes, now, m, answers[m]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := pg.Pipeline(ctx, s.pool, read, write); err != nil {
		if pg.IsUniqueViolation(err) && len(calls) == 1 && calls[0].requestID == "" {
			return nil, errs.AlreadyExists(domain.ReasonConflict, "this submission was scheduled concurrently")
		}
		return nil, fmt.Errorf("deadlines: %w", err)
	}
	return out, nil
}

// queueTimerWrites queues, on writes, the new timers and the changed ones.
func queueTimerWrites(writes *pgx.Batch, inserts []domain.Deadline, changed map[domain.Key]domain.Deadline) {
	if len(inserts) > 0 {
		n := len(inserts)
		ords, subs, states := make([]string, n), make([]int32, n), make([]string, n)
		dues, nexts, created := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
		kinds := make([]int16, n)
		for i, d := range inserts {
			ords[i], subs[i], states[i], dues[i], nexts[i], created[i] = d.OrderID, d.Submission, string(d.State), d.DueAt, d.NextAttemptAt, d.CreatedAt
			kinds[i] = int16(d.Kind)
		}
		writes.Queue(queries.InsertTimers, ords, subs, dues, states, nexts, created, kinds)
	}
	if len(changed) > 0 {
		var (
			ords, states, lastErrs []string
			subs, attempts         []int32
			kinds                  []int16
			nexts                  []time.Time
			fired                  []*time.Time
			closed                 []bool
		)
		for _, d := range changed {
			var f *time.Time
			if !d.FiredAt.IsZero() {
				f = &d.FiredAt
			}
			ords, subs, states, nexts = append(ords, d.OrderID), append(subs, d.Submission), append(states, string(d.State)), append(nexts, d.NextAttemptAt)
			attempts, lastErrs, fired, closed = append(attempts, d.Attempts), append(lastErrs, d.LastError), append(fired, f), append(closed, d.Closed)
			kinds = append(kinds, int16(d.Kind))
		}
		writes.Queue(queries.UpdateTimers, ords, subs, states, nexts, attempts, lastErrs, fired, closed, kinds)
	}
}

// find returns the timer of k among one order's timers.
func find(ds []domain.Deadline, k domain.Key) (domain.Deadline, bool) {
	for _, d := range ds {
		if d.Key == k {
			return d, true
		}
	}
	return domain.Deadline{}, false
}
