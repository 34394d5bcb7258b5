// Package store keeps filing orders, their verifiers and history, and the subjects' approved records
// in PostgreSQL. Every mutation runs in one transaction with its idempotency record and the outbox
// rows it owes other services, so a retry returns the first answer and no call is lost or doubled.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

//go:embed migrations/*.sql
var fs embed.FS

// Migrations creates the filing tables.
var Migrations = pg.Source{Name: "filing", FS: fs}

// Outbox targets this service writes; the relay in server.Run has a handler for each.
const (
	TargetOpenSession      = "verification.OpenSession"
	TargetCancelSession    = "verification.CancelSession"
	TargetScheduleDeadline = "deadline.ScheduleDeadline"
	TargetCancelDeadline   = "deadline.CancelDeadline"
)

// ReasonOrderNotFound is the reason of an unknown order id.
const ReasonOrderNotFound = "ORDER_NOT_FOUND"

// Config holds the settings the store's rules depend on.
type Config struct {
	Rules              domain.Rules
	VerificationWindow time.Duration // how long the verifiers have after SubmitOrder
	Locale             string        // SMS locale passed to verification.OpenSession
}

// Store is the PostgreSQL store.
type Store struct {
	pool  *pgxpool.Pool
	clock clock.Clock
	cfg   Config
	// OnEnqueue, when set, is called after a commit that wrote outbox rows (the relay's Wake).
	OnEnqueue func()
}

// New returns a store on pool.
func New(pool *pgxpool.Pool, clk clock.Clock, cfg Config) *Store {
	if cfg.VerificationWindow <= 0 {
		cfg.VerificationWindow = 24 * time.Hour
	}
	if cfg.Locale == "" {
		cfg.Locale = "zh-CN"
	}
	return &Store{pool: pool, clock: clk, cfg: cfg}
}

// now is truncated to PostgreSQL's microsecond precision, so the first answer (kept by idempotency)
// and later reads show the same times.
func (s *Store) now() time.Time { return s.clock.Now().UTC().Truncate(time.Microsecond) }

func (s *Store) woke() {
	if s.OnEnqueue != nil {
		s.OnEnqueue()
	}
}

// NewID returns an id with prefix: a UUIDv7 (time-ordered, so indexes stay compact) without dashes.
func NewID(prefix string) string {
	u, err := uuid.NewV7()
	if err != nil {
		u = uuid.New()
	}
	return prefix + strings.ReplaceAll(u.String(), "-", "")
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

// loadOrder reads an order with its current verifiers and history; forUpdate locks the order row
// for the rest of tx, which serialises every transition of one order.
func loadOrder(ctx context.Context, q querier, id string, forUpdate bool) (domain.Order, error) {
	sql := `SELECT ` + orderColumns + ` FROM orders WHERE order_id = $1`
	if forUpdate {
		sql += ` FOR UPDATE`
	}
	o, err := scanOrder(q.QueryRow(ctx, sql, id))
	if pg.IsNoRows(err) {
		return o, errs.NotFound(ReasonOrderNotFound, "no order with this order_id")
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
		SELECT v.order_id, v.phone, v.roles, v.id_tails
		FROM order_verifiers v JOIN unnest($1::text[], $2::int[]) AS cur(order_id, submission)
		  ON v.order_id = cur.order_id AND v.submission = cur.submission
		ORDER BY v.order_id, v.position`, ids, subs)
	if err != nil {
		return fmt.Errorf("load verifiers: %w", err)
	}
	for rows.Next() {
		var id string
		var v domain.Verifier
		if err := rows.Scan(&id, &v.Phone, &v.Roles, &v.IDTails); err != nil {
			rows.Close()
			return fmt.Errorf("load verifiers: %w", err)
		}
		byID[id].Verifiers = append(byID[id].Verifiers, v)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load verifiers: %w", err)
	}
	rows, err = q.Query(ctx, `SELECT order_id, at, from_state, to_state, actor, reason FROM order_history
		WHERE order_id = ANY($1) ORDER BY order_id, id`, ids)
	if err != nil {
		return fmt.Errorf("load history: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id, from, to string
			c            domain.StateChange
		)
		if err := rows.Scan(&id, &c.At, &from, &to, &c.Actor, &c.Reason); err != nil {
			return fmt.Errorf("load history: %w", err)
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

// lockSubject reads a live subject's approved record and locks it for the rest of tx.
func lockSubject(ctx context.Context, tx pgx.Tx, id string) (domain.Subject, error) {
	var rec domain.Subject
	var b []byte
	err := tx.QueryRow(ctx, `SELECT record FROM subjects WHERE subject_id = $1 AND deregistered_at IS NULL FOR UPDATE`, id).Scan(&b)
	if pg.IsNoRows(err) {
		return rec, errs.NotFound(domain.ReasonSubjectNotFound, "no approved subject with this subject_id")
	}
	if err != nil {
		return rec, fmt.Errorf("load subject: %w", err)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("decode subject: %w", err)
	}
	return rec, nil
}

// Subject returns a subject's approved record.
func (s *Store) Subject(ctx context.Context, id string) (domain.Subject, error) {
	var rec domain.Subject
	err := pg.InTx(ctx, s.pool, func(tx pgx.Tx) error {
		var err error
		rec, err = lockSubject(ctx, tx, id)
		return err
	})
	return rec, err
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
			if _, err := domain.Next(o.State, domain.EventSubmit, true); err != nil {
				return nil, err
			}
			// The rules may have changed since the order was stored (configuration), so check again.
			spec, err := s.cfg.Rules.Normalize(o.Spec)
			if err != nil {
				return nil, err
			}
			if spec.FilingType != domain.FirstFiling {
				rec, err := lockSubject(ctx, tx, spec.SubjectID)
				if err != nil {
					return nil, err
				}
				if err := s.cfg.Rules.CheckAgainstRecord(spec, rec); err != nil {
					return nil, err
				}
			}
			verifiers := s.cfg.Rules.Verifiers(spec)
			to, err := domain.Next(o.State, domain.EventSubmit, len(verifiers) > 0)
			if err != nil {
				return nil, err
			}
			sub := o.Submission + 1
			var deadline *time.Time
			reason := fmt.Sprintf("submission %d: %d verifier(s)", sub, len(verifiers))
			if len(verifiers) > 0 {
				d := now.Add(s.cfg.VerificationWindow)
				deadline = &d
			} else {
				reason = fmt.Sprintf("submission %d: nobody must verify, straight to review", sub)
			}
			if _, err := tx.Exec(ctx, `UPDATE orders SET state = $2, submission = $3, deadline_at = $4, return_reason = 0,
				updated_at = $5 WHERE order_id = $1`, o.ID, to.String(), sub, deadline, now); err != nil {
				return nil, fmt.Errorf("submit order: %w", err)
			}
			for i, v := range verifiers {
				if _, err := tx.Exec(ctx, `INSERT INTO order_verifiers (order_id, submission, position, phone, roles, id_tails)
					VALUES ($1, $2, $3, $4, $5, $6)`, o.ID, sub, i, v.Phone, v.Roles, v.IDTails); err != nil {
					return nil, fmt.Errorf("insert verifier: %w", err)
				}
			}
			if err := addHistory(ctx, tx, o.ID, now, o.State, to, domain.ActorPortal, reason); err != nil {
				return nil, err
			}
			if deadline != nil {
				if err := s.enqueueOpen(ctx, tx, now, o.ID, sub, *deadline, verifiers); err != nil {
					return nil, err
				}
				enqueued = true
			}
			out, err := reload(ctx, tx, o.ID)
			return &filingv1.SubmitOrderResponse{Order: out}, err
		})
	if err == nil && enqueued {
		s.woke()
	}
	return resp, err
}

func (s *Store) enqueueOpen(ctx context.Context, tx pgx.Tx, now time.Time, id string, sub int32, deadline time.Time, verifiers []domain.Verifier) error {
	specs := make([]*verificationv1.VerifierSpec, len(verifiers))
	for i, v := range verifiers {
		specs[i] = &verificationv1.VerifierSpec{Phone: v.Phone, Roles: v.Roles, IdTails: v.IDTails}
	}
	open := &verificationv1.OpenSessionRequest{
		RequestId: fmt.Sprintf("filing:open-session:%s:%d", id, sub), OrderId: id, Submission: sub,
		DeadlineAt: timestamppb.New(deadline), Verifiers: specs, Locale: s.cfg.Locale,
	}
	if err := outbox.EnqueueSensitive(ctx, tx, now, TargetOpenSession, open); err != nil {
		return err
	}
	schedule := &deadlinev1.ScheduleDeadlineRequest{
		RequestId: fmt.Sprintf("filing:schedule-deadline:%s:%d", id, sub), OrderId: id, Submission: sub,
		DueTime: timestamppb.New(deadline),
	}
	return outbox.Enqueue(ctx, tx, now, TargetScheduleDeadline, schedule)
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
			if o.State == domain.StateAwaitingVerification {
				msgs := map[string]proto.Message{
					TargetCancelSession: &verificationv1.CancelSessionRequest{
						RequestId: fmt.Sprintf("filing:cancel-session:%s:%d", o.ID, o.Submission), OrderId: o.ID, Submission: o.Submission},
					TargetCancelDeadline: &deadlinev1.CancelDeadlineRequest{
						RequestId: fmt.Sprintf("filing:cancel-deadline:%s:%d", o.ID, o.Submission), OrderId: o.ID, Submission: o.Submission},
				}
				for _, target := range []string{TargetCancelSession, TargetCancelDeadline} {
					if err := outbox.Enqueue(ctx, tx, now, target, msgs[target]); err != nil {
						return nil, err
					}
				}
				enqueued = true
			}
			out, err := reload(ctx, tx, o.ID)
			return &filingv1.CancelOrderResponse{Order: out}, err
		})
	if err == nil && enqueued {
		s.woke()
	}
	return resp, err
}

// verificationOutcome applies MarkVerified or ReturnOrder: idempotent by (order_id, submission).
func (s *Store) verificationOutcome(ctx context.Context, tx pgx.Tx, now time.Time, id string, sub int32,
	ev domain.Event, reason domain.ReturnReason) (*filingv1.Order, error) {
	o, err := loadOrder(ctx, tx, id, true)
	if err != nil {
		return nil, err
	}
	to, apply, err := domain.VerificationOutcome(o, ev, sub)
	if err != nil {
		return nil, err
	}
	if !apply {
		return OrderProto(o), nil
	}
	text := "all verifiers passed"
	if ev == domain.EventReturn {
		text = reason.String()
	} else {
		reason = domain.ReturnNone
	}
	if err := setState(ctx, tx, o, now, to, reason); err != nil {
		return nil, err
	}
	if err := addHistory(ctx, tx, o.ID, now, o.State, to, domain.ActorVerification, text); err != nil {
		return nil, err
	}
	return reload(ctx, tx, o.ID)
}

// MarkVerified moves an order whose verification passed to UNDER_REVIEW.
func (s *Store) MarkVerified(ctx context.Context, req *filingv1.MarkVerifiedRequest) (*filingv1.MarkVerifiedResponse, error) {
	now := s.now()
	return idempotency.Do(ctx, s.pool, now, filingv1.FilingInternalService_MarkVerified_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.MarkVerifiedResponse { return &filingv1.MarkVerifiedResponse{} },
		func(tx pgx.Tx) (*filingv1.MarkVerifiedResponse, error) {
			o, err := s.verificationOutcome(ctx, tx, now, req.GetOrderId(), req.GetSubmission(), domain.EventVerified, domain.ReturnNone)
			return &filingv1.MarkVerifiedResponse{Order: o}, err
		})
}

// ReturnOrder returns an order whose verification failed or timed out.
func (s *Store) ReturnOrder(ctx context.Context, req *filingv1.ReturnOrderRequest) (*filingv1.ReturnOrderResponse, error) {
	now := s.now()
	return idempotency.Do(ctx, s.pool, now, filingv1.FilingInternalService_ReturnOrder_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.ReturnOrderResponse { return &filingv1.ReturnOrderResponse{} },
		func(tx pgx.Tx) (*filingv1.ReturnOrderResponse, error) {
			o, err := s.verificationOutcome(ctx, tx, now, req.GetOrderId(), req.GetSubmission(), domain.EventReturn,
				domain.ReturnReason(req.GetReason()))
			return &filingv1.ReturnOrderResponse{Order: o}, err
		})
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
			ev := domain.EventReject
			if req.GetOutcome() == filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED {
				ev = domain.EventApprove
			}
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
	rec, err := lockSubject(ctx, tx, o.Spec.SubjectID)
	if err != nil {
		return err
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
	o, err := s.Order(ctx, id)
	if err != nil {
		return nil, err
	}
	return OrderProto(o), nil
}

// Order returns one order unmasked, for rules and tests inside this service.
func (s *Store) Order(ctx context.Context, id string) (domain.Order, error) {
	return loadOrder(ctx, s.pool, id, false)
}
