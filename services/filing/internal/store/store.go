// Package store keeps filing orders, their verifiers and history, and the subjects' approved records
// in PostgreSQL. Every mutation runs in one transaction with its idempotency record and the outbox
// rows it owes other services, so a retry returns the first answer and no call is lost or doubled.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

//go:embed migrations/*.sql
var fs embed.FS

// Migrations creates the filing tables.
var Migrations = pg.Source{Name: "filing", FS: fs}

// Store is the PostgreSQL store.
type Store struct {
	pool  *pgxpool.Pool
	clock clock.Clock
	cfg   Config
	// OnEnqueue, when set, is called after a commit that wrote outbox rows (the relay's Wake).
	OnEnqueue func()
	// outcomes commits concurrent MarkVerified and ReturnOrder calls together (see outcome.go).
	outcomes *batch.Group[outcomeCall, *filingv1.Order]
}

// New returns a store on pool.
func New(pool *pgxpool.Pool, clk clock.Clock, cfg Config) *Store {
	s := &Store{pool: pool, clock: clk, cfg: cfg.WithDefaults()}
	s.outcomes = &batch.Group[outcomeCall, *filingv1.Order]{Run: s.outcomeBatch, Flights: outcomeFlights, MaxBatch: outcomeMaxBatch}
	return s
}

func (s *Store) now() time.Time { return Now(s.clock) }

func (s *Store) woke() {
	if s.OnEnqueue != nil {
		s.OnEnqueue()
	}
}

// enqueue writes msgs to the outbox inside tx.
func enqueue(ctx context.Context, tx pgx.Tx, now time.Time, msgs []Message) error {
	for _, m := range msgs {
		add := outbox.Enqueue
		if m.Sensitive {
			add = outbox.EnqueueSensitive
		}
		if err := add(ctx, tx, now, m.Target, m.Msg); err != nil {
			return err
		}
	}
	return nil
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const orderColumns = `order_id, spec, state, submission, deadline_at, return_reason, created_at, updated_at`

func scanOrder(row pgx.Row) (domain.Order, error) {
	var (
		o        domain.Order
		spec     []byte
		state    string
		deadline *time.Time
		reason   int32
	)
	if err := row.Scan(&o.ID, &spec, &state, &o.Submission, &deadline, &reason, &o.CreatedAt, &o.UpdatedAt); err != nil {
		return o, err
	}
	if err := json.Unmarshal(spec, &o.Spec); err != nil {
		return o, fmt.Errorf("order %s: decode spec: %w", o.ID, err)
	}
	st, err := domain.ParseState(state)
	if err != nil {
		return o, err
	}
	o.State, o.ReturnReason = st, domain.ReturnReason(reason)
	if deadline != nil {
		o.DeadlineAt = deadline.UTC()
	}
	o.CreatedAt, o.UpdatedAt = o.CreatedAt.UTC(), o.UpdatedAt.UTC()
	return o, nil
}

func errOrderNotFound() error {
	return errs.NotFound(ReasonOrderNotFound, "no order with this order_id")
}

// loadOrder reads an order with its current verifiers and history; forUpdate locks the order row
// for the rest of tx, which serialises every transition of one order.
func loadOrder(ctx context.Context, q querier, id string, forUpdate bool) (domain.Order, error) {
	sql := `SELECT ` + orderColumns + ` FROM orders WHERE order_id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	o, err := scanOrder(q.QueryRow(ctx, sql, id))
	if pg.IsNoRows(err) {
		return o, errOrderNotFound()
	}
	if err != nil {
		return o, fmt.Errorf("load order: %w", err)
	}
	orders := []*domain.Order{&o}
	if err := loadDetails(ctx, q, orders); err != nil {
		return o, err
	}
	return o, nil
}

// loadDetails fills the verifiers of each order's current submission and its history, in two queries.
func loadDetails(ctx context.Context, q querier, orders []*domain.Order) error {
	if len(orders) == 0 {
		return nil
	}
	ids := make([]string, len(orders))
	subs := make([]int32, len(orders))
	byID := make(map[string]*domain.Order, len(orders))
	for i, o := range orders {
		ids[i], subs[i] = o.ID, o.Submission
		byID[o.ID] = o
		o.Verifiers, o.History = nil, nil
	}
	rows, err := q.Query(ctx, `
		SELECT v.order_id, v.phone, v.roles
		FROM order_verifiers v JOIN unnest($1::text[], $2::int[]) AS cur(order_id, submission)
		  ON v.order_id = cur.order_id AND v.submission = cur.submission
		ORDER BY v.order_id, v.position`, ids, subs)
	if err != nil {
		return fmt.Errorf("load verifiers: %w", err)
	}
	if err := scanVerifiers(rows, byID); err != nil {
		return fmt.Errorf("load verifiers: %w", err)
	}
	// One index scan per order (LATERAL): with `order_id = ANY($1) ORDER BY order_id, id` a cached
	// generic plan could walk the whole index in order, which grows with every order ever filed.
	rows, err = q.Query(ctx, historySQL, ids)
	if err != nil {
		return fmt.Errorf("load history: %w", err)
	}
	if err := scanHistory(rows, byID); err != nil {
		return fmt.Errorf("load history: %w", err)
	}
	return nil
}

// historySQL reads the history of the orders $1, each in id order. Each LATERAL subquery here is
// fenced with OFFSET 0: it stays one index lookup per key instead of being flattened into a join
// whose plan depends on statistics that a burst of writes has outdated.
const historySQL = `SELECT h.order_id, h.at, h.from_state, h.to_state, h.actor, h.reason
	FROM unnest($1::text[]) AS i(order_id)
	CROSS JOIN LATERAL (SELECT * FROM order_history WHERE order_id = i.order_id ORDER BY id OFFSET 0) h`

// scanVerifiers appends rows of (order_id, phone, roles) to the verifiers of their orders in byID.
func scanVerifiers(rows pgx.Rows, byID map[string]*domain.Order) error {
	defer rows.Close()
	for rows.Next() {
		var id string
		var v domain.Verifier
		if err := rows.Scan(&id, &v.Phone, &v.Roles); err != nil {
			return err
		}
		byID[id].Verifiers = append(byID[id].Verifiers, v)
	}
	return rows.Err()
}

// scanHistory appends rows of historySQL to the history of their orders in byID.
func scanHistory(rows pgx.Rows, byID map[string]*domain.Order) error {
	defer rows.Close()
	for rows.Next() {
		var (
			id, from, to string
			c            domain.StateChange
			err          error
		)
		if err := rows.Scan(&id, &c.At, &from, &to, &c.Actor, &c.Reason); err != nil {
			return err
		}
		c.At = c.At.UTC()
		c.From, _ = domain.ParseState(from) // "UNSPECIFIED" for the creation
		if c.To, err = domain.ParseState(to); err != nil {
			return err
		}
		byID[id].History = append(byID[id].History, c)
	}
	return rows.Err()
}

func addHistory(ctx context.Context, tx pgx.Tx, id string, now time.Time, from, to domain.State, actor, reason string) error {
	_, err := tx.Exec(ctx, `INSERT INTO order_history (order_id, at, from_state, to_state, actor, reason)
		VALUES ($1, $2, $3, $4, $5, $6)`, id, now, from.String(), to.String(), actor, reason)
	if err != nil {
		return fmt.Errorf("record history: %w", err)
	}
	return nil
}

func setState(ctx context.Context, tx pgx.Tx, o domain.Order, now time.Time, to domain.State, reason domain.ReturnReason) error {
	_, err := tx.Exec(ctx, `UPDATE orders SET state = $2, return_reason = $3, updated_at = $4 WHERE order_id = $1`,
		o.ID, to.String(), int32(reason), now)
	if err != nil {
		return fmt.Errorf("update order state: %w", err)
	}
	return nil
}

// reload reads the order again inside tx after a change, and renders the answer.
func reload(ctx context.Context, tx pgx.Tx, id string) (*filingv1.Order, error) {
	o, err := loadOrder(ctx, tx, id, false)
	if err != nil {
		return nil, err
	}
	return OrderProto(o), nil
}

// CreateOrder stores a new DRAFT order with a normalized spec.
func (s *Store) CreateOrder(ctx context.Context, req *filingv1.CreateOrderRequest, spec domain.Spec) (*filingv1.CreateOrderResponse, error) {
	now := s.now()
	return idempotency.Do(ctx, s.pool, now, filingv1.FilingService_CreateOrder_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.CreateOrderResponse { return &filingv1.CreateOrderResponse{} },
		func(tx pgx.Tx) (*filingv1.CreateOrderResponse, error) {
			if err := checkSubject(ctx, tx, spec); err != nil {
				return nil, err
			}
			id := NewID("ord_")
			b, err := json.Marshal(spec)
			if err != nil {
				return nil, err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO orders (order_id, filing_type, subject_id, spec, state, created_at, updated_at)
				VALUES ($1, $2, $3, $4, $5, $6, $6)`, id, int32(spec.FilingType), spec.SubjectID, b, domain.StateDraft.String(), now); err != nil {
				return nil, fmt.Errorf("insert order: %w", err)
			}
			if err := addHistory(ctx, tx, id, now, domain.StateUnspecified, domain.StateDraft, domain.ActorPortal, "created"); err != nil {
				return nil, err
			}
			o, err := reload(ctx, tx, id)
			return &filingv1.CreateOrderResponse{Order: o}, err
		})
}

// UpdateOrder replaces the spec of a DRAFT or RETURNED order.
func (s *Store) UpdateOrder(ctx context.Context, req *filingv1.UpdateOrderRequest, spec domain.Spec) (*filingv1.UpdateOrderResponse, error) {
	now := s.now()
	return idempotency.Do(ctx, s.pool, now, filingv1.FilingService_UpdateOrder_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.UpdateOrderResponse { return &filingv1.UpdateOrderResponse{} },
		func(tx pgx.Tx) (*filingv1.UpdateOrderResponse, error) {
			o, err := loadOrder(ctx, tx, req.GetOrderId(), true)
			if err != nil {
				return nil, err
			}
			if err := domain.CheckUpdatable(o.State); err != nil {
				return nil, err
			}
			if err := checkSubject(ctx, tx, spec); err != nil {
				return nil, err
			}
			b, err := json.Marshal(spec)
			if err != nil {
				return nil, err
			}
			if _, err := tx.Exec(ctx, `UPDATE orders SET spec = $2, filing_type = $3, subject_id = $4, updated_at = $5
				WHERE order_id = $1`, o.ID, b, int32(spec.FilingType), spec.SubjectID, now); err != nil {
				return nil, fmt.Errorf("update order: %w", err)
			}
			out, err := reload(ctx, tx, o.ID)
			return &filingv1.UpdateOrderResponse{Order: out}, err
		})
}

// readSubject reads a live subject's approved record; forUpdate locks it for the rest of tx (an
// approval writes it, a submission is checked against it).
func readSubject(ctx context.Context, q querier, id string, forUpdate bool) (domain.Subject, bool, error) {
	var rec domain.Subject
	var b []byte
	sql := `SELECT record FROM subjects WHERE subject_id = $1 AND deregistered_at IS NULL`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	err := q.QueryRow(ctx, sql, id).Scan(&b)
	if pg.IsNoRows(err) {
		return rec, false, nil
	}
	if err != nil {
		return rec, false, fmt.Errorf("load subject: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, false, fmt.Errorf("decode subject: %w", err)
	}
	return rec, true, nil
}

// checkSubject refuses an order that names a subject without a live approved record; the request
// names it, so it is NotFound (SubmitOrder checks the record again, see domain.PlanSubmit).
func checkSubject(ctx context.Context, q querier, spec domain.Spec) error {
	if spec.FilingType == domain.FirstFiling {
		return nil
	}
	_, found, err := readSubject(ctx, q, spec.SubjectID, false)
	if err == nil && !found {
		err = domain.UnknownSubject()
	}
	return err
}

// SubmitOrder computes the verifiers of a DRAFT or RETURNED order and opens a new submission: with
// verifiers the order awaits verification and the outbox gets verification.OpenSession and
// deadline.ScheduleDeadline; without, it goes straight to review.
func (s *Store) SubmitOrder(ctx context.Context, req *filingv1.SubmitOrderRequest) (*filingv1.SubmitOrderResponse, error) {
	now := s.now()
	enqueued := false
	resp, err := idempotency.Do(ctx, s.pool, now, filingv1.FilingService_SubmitOrder_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.SubmitOrderResponse { return &filingv1.SubmitOrderResponse{} },
		func(tx pgx.Tx) (*filingv1.SubmitOrderResponse, error) {
			enqueued = false
			o, err := loadOrder(ctx, tx, req.GetOrderId(), true)
			if err != nil {
				return nil, err
			}
			p, err := s.cfg.Rules.PlanSubmit(o, now, s.cfg.VerificationWindow, func(id string) (domain.Subject, bool, error) {
				return readSubject(ctx, tx, id, true)
			})
			if err != nil {
				return nil, err
			}
			var deadline *time.Time
			if !p.DeadlineAt.IsZero() {
				deadline = &p.DeadlineAt
			}
			if _, err := tx.Exec(ctx, `UPDATE orders SET state = $2, submission = $3, deadline_at = $4, return_reason = 0,
				updated_at = $5 WHERE order_id = $1`, o.ID, p.To.String(), p.Number, deadline, now); err != nil {
				return nil, fmt.Errorf("submit order: %w", err)
			}
			// The ID tails go only to verification (in the outbox payload): this service never reads them back.
			for i, v := range p.Verifiers {
				if _, err := tx.Exec(ctx, `INSERT INTO order_verifiers (order_id, submission, position, phone, roles)
					VALUES ($1, $2, $3, $4, $5)`, o.ID, p.Number, i, v.Phone, v.Roles); err != nil {
					return nil, fmt.Errorf("insert verifier: %w", err)
				}
			}
			if err := addHistory(ctx, tx, o.ID, now, o.State, p.To, domain.ActorPortal, p.Reason); err != nil {
				return nil, err
			}
			msgs := SubmitMessages(o.ID, p, s.cfg.Locale)
			if err := enqueue(ctx, tx, now, msgs); err != nil {
				return nil, err
			}
			enqueued = len(msgs) > 0
			out, err := reload(ctx, tx, o.ID)
			return &filingv1.SubmitOrderResponse{Order: out}, err
		})
	if err == nil && enqueued {
		s.woke()
	}
	return resp, err
}

// CancelOrder cancels a DRAFT, RETURNED or AWAITING_VERIFICATION order; cancelling an order in
// verification also closes its session and its deadline timer through the outbox.
func (s *Store) CancelOrder(ctx context.Context, req *filingv1.CancelOrderRequest) (*filingv1.CancelOrderResponse, error) {
	now := s.now()
	enqueued := false
	resp, err := idempotency.Do(ctx, s.pool, now, filingv1.FilingService_CancelOrder_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.CancelOrderResponse { return &filingv1.CancelOrderResponse{} },
		func(tx pgx.Tx) (*filingv1.CancelOrderResponse, error) {
			enqueued = false
			o, err := loadOrder(ctx, tx, req.GetOrderId(), true)
			if err != nil {
				return nil, err
			}
			to, err := domain.Next(o.State, domain.EventCancel, true)
			if err != nil {
				return nil, err
			}
			if err := setState(ctx, tx, o, now, to, o.ReturnReason); err != nil {
				return nil, err
			}
			if err := addHistory(ctx, tx, o.ID, now, o.State, to, domain.ActorPortal, req.GetReason()); err != nil {
				return nil, err
			}
			msgs := CancelMessages(o)
			if err := enqueue(ctx, tx, now, msgs); err != nil {
				return nil, err
			}
			enqueued = len(msgs) > 0
			out, err := reload(ctx, tx, o.ID)
			return &filingv1.CancelOrderResponse{Order: out}, err
		})
	if err == nil && enqueued {
		s.woke()
	}
	return resp, err
}

// RecordReviewOutcome records the administration's decision; an approval creates or updates the
// subject's approved record in the same transaction.
func (s *Store) RecordReviewOutcome(ctx context.Context, req *filingv1.RecordReviewOutcomeRequest) (*filingv1.RecordReviewOutcomeResponse, error) {
	now := s.now()
	return idempotency.Do(ctx, s.pool, now, filingv1.FilingInternalService_RecordReviewOutcome_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.RecordReviewOutcomeResponse { return &filingv1.RecordReviewOutcomeResponse{} },
		func(tx pgx.Tx) (*filingv1.RecordReviewOutcomeResponse, error) {
			o, err := loadOrder(ctx, tx, req.GetOrderId(), true)
			if err != nil {
				return nil, err
			}
			ev := ReviewEvent(req.GetOutcome() == filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED)
			to, err := domain.Next(o.State, ev, true)
			if err != nil {
				return nil, err
			}
			if ev == domain.EventApprove {
				if err := s.applyApproval(ctx, tx, now, o); err != nil {
					return nil, err
				}
			}
			if err := setState(ctx, tx, o, now, to, o.ReturnReason); err != nil {
				return nil, err
			}
			if err := addHistory(ctx, tx, o.ID, now, o.State, to, domain.ActorAdministration, req.GetComment()); err != nil {
				return nil, err
			}
			out, err := reload(ctx, tx, o.ID)
			return &filingv1.RecordReviewOutcomeResponse{Order: out}, err
		})
}

func (s *Store) applyApproval(ctx context.Context, tx pgx.Tx, now time.Time, o domain.Order) error {
	if o.Spec.FilingType == domain.FirstFiling {
		rec := domain.ApplyApproval(o.Spec, domain.Subject{}, NewID("sub_"))
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO subjects (subject_id, name, record, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)`,
			rec.ID, rec.Name, b, now); err != nil {
			return fmt.Errorf("insert subject: %w", err)
		}
		// The order now names the subject it created, so the portal can file later orders against it.
		spec := o.Spec
		spec.SubjectID = rec.ID
		sb, err := json.Marshal(spec)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE orders SET spec = $2, subject_id = $3 WHERE order_id = $1`, o.ID, sb, rec.ID); err != nil {
			return fmt.Errorf("link order to subject: %w", err)
		}
		return nil
	}
	rec, found, err := readSubject(ctx, tx, o.Spec.SubjectID, true)
	if err != nil {
		return err
	}
	if !found {
		// Deregistered while the order was under review.
		return errs.FailedPrecondition(domain.ReasonSubjectNotFound, "the order's subject has no live approved record")
	}
	rec = domain.ApplyApproval(o.Spec, rec, "")
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	var deregistered *time.Time
	if rec.Deregistered {
		deregistered = &now
	}
	if _, err := tx.Exec(ctx, `UPDATE subjects SET name = $2, record = $3, deregistered_at = $4, updated_at = $5 WHERE subject_id = $1`,
		rec.ID, rec.Name, b, deregistered, now); err != nil {
		return fmt.Errorf("update subject: %w", err)
	}
	return nil
}

// GetOrder returns one order, rendered with masked personal data.
func (s *Store) GetOrder(ctx context.Context, id string) (*filingv1.Order, error) {
	o, err := loadOrder(ctx, s.pool, id, false)
	if err != nil {
		return nil, err
	}
	return OrderProto(o), nil
}
