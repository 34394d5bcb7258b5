package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// MarkVerified and ReturnOrder come from verification's outbox relay, many at once: concurrent calls
// are committed together (pkg/batch), one transaction in two pipelined round trips for the whole
// batch instead of about thirteen round trips and a commit per call. Each call keeps the guarantees
// of idempotency.Do: its answer is stored under its request_id in the same transaction, twins queue
// on the same advisory lock, a call refused by the rules changes and stores nothing.

const (
	// outcomeFlights batches may be in flight at once; while one runs the next calls queue up.
	// One: the outcome calls come from outbox relays, a claimed batch's calls together, and with a
	// second flight a burst was split into small batches (4 orders per batch in the Verify
	// benchmark, 7.7 with one flight, for the same statements per batch).
	outcomeFlights = 1
	// outcomeMaxBatch bounds a batch (the relay sends up to 32 calls at a time per replica).
	outcomeMaxBatch = 64
	// outcomeTimeout bounds one batch: it runs detached from any one caller's context.
	outcomeTimeout = 15 * time.Second
)

// outcomeCall is one MarkVerified or ReturnOrder call.
type outcomeCall struct {
	method     string // full gRPC method name, the idempotency scope
	requestID  string
	hash       []byte // of the request (requestHash); nil without request_id
	orderID    string
	submission int32
	ev         domain.Event // EventVerified or EventReturn
	reason     domain.ReturnReason
	locks      []domain.PhoneLock // ReturnOrder's: recorded whatever the call's outcome (a fact from verification)
}

// MarkVerified moves an order whose verification passed to UNDER_REVIEW (VerificationOutcomes of one).
func (s *Store) MarkVerified(ctx context.Context, req *filingv1.MarkVerifiedRequest) (*filingv1.MarkVerifiedResponse, error) {
	o, err := s.outcomeReq(ctx, req)
	if err != nil {
		return nil, err
	}
	return &filingv1.MarkVerifiedResponse{Order: o}, nil
}

// ReturnOrder returns an order whose verification failed or timed out (VerificationOutcomes of one).
func (s *Store) ReturnOrder(ctx context.Context, req *filingv1.ReturnOrderRequest) (*filingv1.ReturnOrderResponse, error) {
	o, err := s.outcomeReq(ctx, req)
	if err != nil {
		return nil, err
	}
	return &filingv1.ReturnOrderResponse{Order: o}, nil
}

func (s *Store) outcomeReq(ctx context.Context, req proto.Message) (*filingv1.Order, error) {
	res, err := s.VerificationOutcomes(ctx, []proto.Message{req})
	if err != nil {
		return nil, err
	}
	return res[0].Value, res[0].Err
}

// VerificationOutcomes applies MarkVerified and ReturnOrder requests (app.Engine). A lone request
// joins the concurrent ones in the next group commit (s.outcomes); a batch call's requests are
// already together and run as one transaction of their own (outcomeBatch), where outcomeAll decides
// them in order against the locked orders with set-based reads and writes.
func (s *Store) VerificationOutcomes(ctx context.Context, reqs []proto.Message) ([]batch.Result[*filingv1.Order], error) {
	out := make([]batch.Result[*filingv1.Order], len(reqs))
	calls := make([]outcomeCall, 0, len(reqs))
	idx := make([]int, 0, len(reqs)) // the request of each call
	for i, req := range reqs {
		c, err := newOutcomeCall(req)
		if err != nil {
			out[i].Err = err
			continue
		}
		calls, idx = append(calls, c), append(idx, i)
	}
	switch len(calls) {
	case 0:
		return out, nil
	case 1:
		if len(reqs) == 1 {
			o, err := s.outcomes.Do(ctx, calls[0])
			out[0] = batch.Result[*filingv1.Order]{Value: o, Err: err}
			return out, nil
		}
	}
	for j, r := range s.outcomeBatch(ctx, calls) {
		out[idx[j]] = r
	}
	return out, nil
}

// newOutcomeCall is the call of a MarkVerified or ReturnOrder request, fingerprinted for its
// request id under the single method's name (a batch item and a single call are one request).
func newOutcomeCall(req proto.Message) (outcomeCall, error) {
	var c outcomeCall
	switch r := req.(type) {
	case *filingv1.MarkVerifiedRequest:
		c = outcomeCall{method: filingv1.FilingInternalService_MarkVerified_FullMethodName,
			requestID: r.GetRequestId(), orderID: r.GetOrderId(), submission: r.GetSubmission(), ev: domain.EventVerified}
	case *filingv1.ReturnOrderRequest:
		c = outcomeCall{method: filingv1.FilingInternalService_ReturnOrder_FullMethodName,
			requestID: r.GetRequestId(), orderID: r.GetOrderId(), submission: r.GetSubmission(), ev: domain.EventReturn,
			reason: domain.ReturnReason(r.GetReason()), locks: convert.PhoneLocks(r)}
	default:
		return c, fmt.Errorf("verification outcome: unexpected request %T", req)
	}
	if err := idempotency.CheckRequestID(c.requestID); err != nil {
		return c, err
	}
	if c.requestID != "" {
		h, err := idempotency.Hash(req)
		if err != nil {
			return c, err
		}
		c.hash = h
	}
	return c, nil
}

// outcomeResponse is the response message of c's method, the form its answer is stored in.
func outcomeResponse(ev domain.Event, o *filingv1.Order) interface {
	proto.Message
	GetOrder() *filingv1.Order
} {
	if ev == domain.EventReturn {
		return &filingv1.ReturnOrderResponse{Order: o}
	}
	return &filingv1.MarkVerifiedResponse{Order: o}
}

// outcomeBatch runs a batch as one transaction. A batch that fails as a whole (a deadlock, a lost
// connection, an order that cannot be read) is retried call by call, so that one call's error stays
// its own; a call alone is retried like idempotency.Do in pg.InTx.
func (s *Store) outcomeBatch(ctx context.Context, calls []outcomeCall) []batch.Result[*filingv1.Order] {
	ctx, cancel := context.WithTimeout(ctx, outcomeTimeout)
	defer cancel()
	return batch.AllOrEach(ctx, calls, nil, s.outcomeAll, s.outcomeOne)
}

func (s *Store) outcomeOne(ctx context.Context, c outcomeCall) batch.Result[*filingv1.Order] {
	for range 2 {
		var out []batch.Result[*filingv1.Order]
		err := pg.Retry(ctx, func() error {
			var err error
			out, err = s.outcomeAll(ctx, []outcomeCall{c})
			return err
		})
		if pg.IsUniqueViolation(err) && c.requestID != "" {
			continue // a twin outside the advisory lock committed first: the next attempt reads its answer
		}
		if err != nil {
			return batch.Result[*filingv1.Order]{Err: err}
		}
		return out[0]
	}
	return batch.Result[*filingv1.Order]{Err: fmt.Errorf("idempotency: request %s kept conflicting", c.method)}
}

// outcomeAll runs calls in one transaction on one connection, in two pipelined round trips
// (pg.Pipeline): BEGIN, the advisory locks, the stored answers, the orders locked with their
// verifiers and history; then the writes and COMMIT. In between, the calls are decided in Go one
// after the other against the orders in memory, as if they had run one by one in batch order. It
// returns an error only when the batch failed as a whole: nothing of it was committed or, with
// pg.ErrOutcomeUnknown, perhaps all of it (the call-by-call retry then replays the stored answers,
// and an outcome already applied applies no more).
func (s *Store) outcomeAll(ctx context.Context, calls []outcomeCall) ([]batch.Result[*filingv1.Order], error) {
	var ids []string
	var keys []idempotency.Key
	for _, c := range calls {
		ids = append(ids, c.orderID)
		keys = append(keys, idempotency.Key{Method: c.method, RequestID: c.requestID})
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)

	// Round trip 1: BEGIN, the locks and the loads. Each statement runs after the previous one has
	// its locks, with a fresh snapshot (READ COMMITTED): the lookups see a twin committed while we
	// waited, the details an order's last committed change.
	stored := map[idempotency.Key]idempotency.Stored{}
	orders := make(map[string]*domain.Order, len(ids))
	read := func(b *pgx.Batch) error {
		b.Queue(pg.GenericPlans)
		idempotency.QueueKeyLocks(b, keys) // the locks of idempotency.Do, so twins outside the batch queue too
		idempotency.QueueKeyLookup(b, keys, stored)
		b.Queue(queries.LockOrders, ids).Query(func(rows pgx.Rows) error {
			for rows.Next() {
				o, err := scanOrder(rows)
				if err != nil {
					return err
				}
				orders[o.ID] = &o
			}
			return rows.Err()
		})
		b.Queue(queries.CurrentVerifiers, ids).Query(func(rows pgx.Rows) error { return scanVerifiers(rows, orders) })
		b.Queue(queries.History, ids).Query(func(rows pgx.Rows) error { return scanHistory(rows, orders) })
		return nil
	}
	var out []batch.Result[*filingv1.Order]
	write := func(b *pgx.Batch) error {
		// The clock is read after the locks: a batch that waited for another change of an order records
		// a later time than that change.
		now := clock.Micro(s.clock)
		loaded := make(map[string]int, len(orders)) // history length before this batch
		for id, o := range orders {
			loaded[id] = len(o.History)
		}
		var saves []idempotency.Stored
		var err error
		if out, saves, err = decideOutcomes(calls, stored, orders, now); err != nil {
			return err
		}
		queueOutcomeWrites(b, ids, orders, loaded, now)
		queueSavePhoneLocks(b, calls)
		idempotency.QueueSaveStored(b, now, saves)
		return nil
	}
	if err := pg.Pipeline(ctx, s.pool, read, write); err != nil {
		return nil, fmt.Errorf("verification outcome: %w", err)
	}
	return out, nil
}

// decideOutcomes decides calls one after the other against the locked orders (changed in place), as
// if they had run one by one in batch order, and returns their results and the answers to store.
func decideOutcomes(calls []outcomeCall, stored map[idempotency.Key]idempotency.Stored, orders map[string]*domain.Order,
	now time.Time) ([]batch.Result[*filingv1.Order], []idempotency.Stored, error) {
	out := make([]batch.Result[*filingv1.Order], len(calls))
	rendered := map[string]bool{}
	var saves []idempotency.Stored
	for i, c := range calls {
		k := idempotency.Key{Method: c.method, RequestID: c.requestID}
		if c.requestID != "" {
			if a, ok := stored[k]; ok {
				if !a.Matches(c.hash) {
					out[i].Err = errs.RequestIDReused
					continue
				}
				resp := outcomeResponse(c.ev, nil)
				if err := proto.Unmarshal(a.Response, resp); err != nil {
					return nil, nil, fmt.Errorf("stored answer: %w", err)
				}
				out[i].Value = resp.GetOrder()
				continue
			}
		}
		o := orders[c.orderID]
		if o == nil {
			out[i].Err = domain.OrderNotFound()
			continue
		}
		to, apply, err := domain.VerificationOutcome(*o, c.ev, c.submission)
		if err != nil {
			out[i].Err = err // refused: changes and stores nothing, like a rolled back call
			continue
		}
		if apply {
			// The change as a reload would read it back: now already has PostgreSQL's precision.
			text, reason := domain.OutcomeText(c.ev, c.reason)
			o.ReturnReason = reason
			o.Move(now, to, domain.ActorVerification, text)
		}
		answer := convert.Order(*o)
		if rendered[o.ID] {
			answer = proto.Clone(answer).(*filingv1.Order) // answers of one order share no slices
		}
		rendered[o.ID] = true
		out[i].Value = answer
		if c.requestID != "" {
			resp, err := proto.Marshal(outcomeResponse(c.ev, answer))
			if err != nil {
				return nil, nil, fmt.Errorf("store answer: %w", err)
			}
			// A twin later in this batch reads this answer, as it would after this call's commit.
			stored[k] = idempotency.Stored{Key: k, RequestHash: c.hash, Response: resp}
			saves = append(saves, stored[k])
		}
	}
	return out, saves, nil
}

// queueOutcomeWrites queues, on b, the changes of the orders ids (in order_id order, the lock order)
// beyond the first loaded[id] entries of their history.
func queueOutcomeWrites(b *pgx.Batch, ids []string, orders map[string]*domain.Order, loaded map[string]int, now time.Time) {
	var (
		upIDs, upStates            []string
		upReasons                  []int32
		hIDs, hFrom, hTo, hReasons []string
	)
	for _, id := range ids {
		o := orders[id]
		if o == nil || len(o.History) == loaded[id] {
			continue
		}
		upIDs, upStates, upReasons = append(upIDs, id), append(upStates, o.State.String()), append(upReasons, int32(o.ReturnReason))
		for _, h := range o.History[loaded[id]:] {
			hIDs, hFrom, hTo, hReasons = append(hIDs, id), append(hFrom, h.From.String()), append(hTo, h.To.String()), append(hReasons, h.Reason)
		}
	}
	if len(upIDs) > 0 {
		b.Queue(queries.UpdateOrders, upIDs, upStates, upReasons, now).Exec(func(ct pgconn.CommandTag) error {
			if ct.RowsAffected() != int64(len(upIDs)) {
				return fmt.Errorf("updated %d orders, want %d", ct.RowsAffected(), len(upIDs))
			}
			return nil
		})
		b.Queue(queries.InsertHistory, hIDs, now, hFrom, hTo, domain.ActorVerification, hReasons)
	}
}

// queueSavePhoneLocks queues, on b, the phone locks the calls carry.
func queueSavePhoneLocks(b *pgx.Batch, calls []outcomeCall) {
	var all []domain.PhoneLock
	for _, c := range calls {
		all = append(all, c.locks...)
	}
	if len(all) == 0 {
		return
	}
	locks := domain.MergeLocks(all)
	phones, until := make([]string, len(locks)), make([]time.Time, len(locks))
	for i, l := range locks {
		phones[i], until[i] = l.Phone, l.Until
	}
	b.Queue(queries.SavePhoneLocks, phones, until)
}
