// Package memstore is the filing store in memory, for the one-process development server: the same
// behaviour as the PostgreSQL store (package store) and the same test suite (storetest), with the
// rules and the calls owed to other services shared through domain and store, so the two engines
// differ only in storage. One mutex guards all state: every operation is atomic, like a transaction.
// Nothing survives a restart.
package memstore

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
	"github.com/icpverify/icpverify/services/filing/internal/store"
)

// Store is the in-memory store.
type Store struct {
	clock clock.Clock
	cfg   store.Config
	queue *outbox.MemQueue
	// OnEnqueue, when set, is called after a change that queued outbox rows (the relay's Wake).
	OnEnqueue func()

	mu       sync.Mutex
	orders   map[string]*domain.Order // verifiers without ID tails, like the PostgreSQL store
	subjects map[string]domain.Subject
	idem     *idempotency.MemTable
}

// New returns an empty store that queues its outbox rows on queue (the relay's queue).
func New(clk clock.Clock, cfg store.Config, queue *outbox.MemQueue) *Store {
	return &Store{clock: clk, cfg: cfg.WithDefaults(), queue: queue, orders: map[string]*domain.Order{},
		subjects: map[string]domain.Subject{}, idem: idempotency.NewMemTable()}
}

func (s *Store) woke(enqueued bool, err error) {
	if err == nil && enqueued && s.OnEnqueue != nil {
		s.OnEnqueue()
	}
}

// enqueue queues msgs; the caller holds s.mu, which makes the rows part of the change.
func (s *Store) enqueue(now time.Time, msgs []store.Message) error {
	for _, m := range msgs {
		if err := s.queue.Add(now, m.Target, m.Msg, m.Sensitive); err != nil {
			return err
		}
	}
	return nil
}

// The subject record is a live one or none: a deregistered subject is kept out of every lookup,
// like the PostgreSQL store's deregistered_at filter.
func (s *Store) record(id string) (domain.Subject, bool, error) {
	rec, ok := s.subjects[id]
	if !ok || rec.Deregistered {
		return domain.Subject{}, false, nil
	}
	return cloneSubject(rec), true, nil
}

func (s *Store) checkSubject(spec domain.Spec) error {
	if spec.FilingType == domain.FirstFiling {
		return nil
	}
	if _, found, _ := s.record(spec.SubjectID); !found {
		return domain.UnknownSubject()
	}
	return nil
}

func (s *Store) order(id string) (*domain.Order, error) {
	o, ok := s.orders[id]
	if !ok {
		return nil, errs.NotFound(store.ReasonOrderNotFound, "no order with this order_id")
	}
	return o, nil
}

// render is the answer for o: a deep copy, so nothing the caller does reaches the store.
func render(o *domain.Order) *filingv1.Order { return store.OrderProto(cloneOrder(*o)) }

func addHistory(o *domain.Order, now time.Time, to domain.State, actor, reason string) {
	o.History = append(o.History, domain.StateChange{From: o.State, To: to, At: now, Actor: actor, Reason: reason})
	o.State, o.UpdatedAt = to, now
}

// CreateOrder stores a new DRAFT order with a normalized spec.
func (s *Store) CreateOrder(_ context.Context, req *filingv1.CreateOrderRequest, spec domain.Spec) (*filingv1.CreateOrderResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := store.Now(s.clock)
	return idempotency.DoMem(s.idem, filingv1.FilingService_CreateOrder_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.CreateOrderResponse { return &filingv1.CreateOrderResponse{} },
		func() (*filingv1.CreateOrderResponse, error) {
			if err := s.checkSubject(spec); err != nil {
				return nil, err
			}
			o := &domain.Order{ID: store.NewID("ord_"), Spec: cloneSpec(spec), State: domain.StateUnspecified, CreatedAt: now}
			addHistory(o, now, domain.StateDraft, domain.ActorPortal, "created")
			s.orders[o.ID] = o
			return &filingv1.CreateOrderResponse{Order: render(o)}, nil
		})
}

// UpdateOrder replaces the spec of a DRAFT or RETURNED order.
func (s *Store) UpdateOrder(_ context.Context, req *filingv1.UpdateOrderRequest, spec domain.Spec) (*filingv1.UpdateOrderResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := store.Now(s.clock)
	return idempotency.DoMem(s.idem, filingv1.FilingService_UpdateOrder_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.UpdateOrderResponse { return &filingv1.UpdateOrderResponse{} },
		func() (*filingv1.UpdateOrderResponse, error) {
			o, err := s.order(req.GetOrderId())
			if err != nil {
				return nil, err
			}
			if err := domain.CheckUpdatable(o.State); err != nil {
				return nil, err
			}
			if err := s.checkSubject(spec); err != nil {
				return nil, err
			}
			o.Spec, o.UpdatedAt = cloneSpec(spec), now
			return &filingv1.UpdateOrderResponse{Order: render(o)}, nil
		})
}

// SubmitOrder opens a new submission (see store.Store.SubmitOrder).
func (s *Store) SubmitOrder(_ context.Context, req *filingv1.SubmitOrderRequest) (*filingv1.SubmitOrderResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := store.Now(s.clock)
	enqueued := false
	resp, err := idempotency.DoMem(s.idem, filingv1.FilingService_SubmitOrder_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.SubmitOrderResponse { return &filingv1.SubmitOrderResponse{} },
		func() (*filingv1.SubmitOrderResponse, error) {
			o, err := s.order(req.GetOrderId())
			if err != nil {
				return nil, err
			}
			p, err := s.cfg.Rules.PlanSubmit(cloneOrder(*o), now, s.cfg.VerificationWindow, s.record)
			if err != nil {
				return nil, err
			}
			msgs := store.SubmitMessages(o.ID, p, s.cfg.Locale)
			if err := s.enqueue(now, msgs); err != nil {
				return nil, err
			}
			enqueued = len(msgs) > 0
			o.Submission, o.DeadlineAt, o.ReturnReason = p.Number, p.DeadlineAt, domain.ReturnNone
			// The ID tails go only to verification (in the outbox payload), as in the PostgreSQL store.
			o.Verifiers = make([]domain.Verifier, len(p.Verifiers))
			for i, v := range p.Verifiers {
				o.Verifiers[i] = domain.Verifier{Phone: v.Phone, Roles: slices.Clone(v.Roles)}
			}
			addHistory(o, now, p.To, domain.ActorPortal, p.Reason)
			return &filingv1.SubmitOrderResponse{Order: render(o)}, nil
		})
	s.woke(enqueued, err)
	return resp, err
}

// CancelOrder cancels a DRAFT, RETURNED or AWAITING_VERIFICATION order.
func (s *Store) CancelOrder(_ context.Context, req *filingv1.CancelOrderRequest) (*filingv1.CancelOrderResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := store.Now(s.clock)
	enqueued := false
	resp, err := idempotency.DoMem(s.idem, filingv1.FilingService_CancelOrder_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.CancelOrderResponse { return &filingv1.CancelOrderResponse{} },
		func() (*filingv1.CancelOrderResponse, error) {
			o, err := s.order(req.GetOrderId())
			if err != nil {
				return nil, err
			}
			to, err := domain.Next(o.State, domain.EventCancel, true)
			if err != nil {
				return nil, err
			}
			msgs := store.CancelMessages(*o)
			if err := s.enqueue(now, msgs); err != nil {
				return nil, err
			}
			enqueued = len(msgs) > 0
			addHistory(o, now, to, domain.ActorPortal, req.GetReason())
			return &filingv1.CancelOrderResponse{Order: render(o)}, nil
		})
	s.woke(enqueued, err)
	return resp, err
}

// verificationOutcome applies MarkVerified or ReturnOrder: idempotent by (order_id, submission).
func (s *Store) verificationOutcome(now time.Time, id string, sub int32, ev domain.Event, reason domain.ReturnReason) (*filingv1.Order, error) {
	o, err := s.order(id)
	if err != nil {
		return nil, err
	}
	to, apply, err := domain.VerificationOutcome(cloneOrder(*o), ev, sub)
	if err != nil {
		return nil, err
	}
	if apply {
		text, reason := store.OutcomeText(ev, reason)
		o.ReturnReason = reason
		addHistory(o, now, to, domain.ActorVerification, text)
	}
	return render(o), nil
}

// MarkVerified moves an order whose verification passed to UNDER_REVIEW.
func (s *Store) MarkVerified(_ context.Context, req *filingv1.MarkVerifiedRequest) (*filingv1.MarkVerifiedResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := store.Now(s.clock)
	return idempotency.DoMem(s.idem, filingv1.FilingInternalService_MarkVerified_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.MarkVerifiedResponse { return &filingv1.MarkVerifiedResponse{} },
		func() (*filingv1.MarkVerifiedResponse, error) {
			o, err := s.verificationOutcome(now, req.GetOrderId(), req.GetSubmission(), domain.EventVerified, domain.ReturnNone)
			if err != nil {
				return nil, err
			}
			return &filingv1.MarkVerifiedResponse{Order: o}, nil
		})
}

// ReturnOrder returns an order whose verification failed or timed out.
func (s *Store) ReturnOrder(_ context.Context, req *filingv1.ReturnOrderRequest) (*filingv1.ReturnOrderResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := store.Now(s.clock)
	return idempotency.DoMem(s.idem, filingv1.FilingInternalService_ReturnOrder_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.ReturnOrderResponse { return &filingv1.ReturnOrderResponse{} },
		func() (*filingv1.ReturnOrderResponse, error) {
			o, err := s.verificationOutcome(now, req.GetOrderId(), req.GetSubmission(), domain.EventReturn, domain.ReturnReason(req.GetReason()))
			if err != nil {
				return nil, err
			}
			return &filingv1.ReturnOrderResponse{Order: o}, nil
		})
}

// RecordReviewOutcome records the administration's decision; an approval creates or updates the
// subject's approved record in the same step.
func (s *Store) RecordReviewOutcome(_ context.Context, req *filingv1.RecordReviewOutcomeRequest) (*filingv1.RecordReviewOutcomeResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := store.Now(s.clock)
	return idempotency.DoMem(s.idem, filingv1.FilingInternalService_RecordReviewOutcome_FullMethodName, req.GetRequestId(), req,
		func() *filingv1.RecordReviewOutcomeResponse { return &filingv1.RecordReviewOutcomeResponse{} },
		func() (*filingv1.RecordReviewOutcomeResponse, error) {
			o, err := s.order(req.GetOrderId())
			if err != nil {
				return nil, err
			}
			ev := store.ReviewEvent(req.GetOutcome() == filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED)
			to, err := domain.Next(o.State, ev, true)
			if err != nil {
				return nil, err
			}
			if ev == domain.EventApprove {
				// Decide everything before changing anything: an error must leave the store as it was.
				if o.Spec.FilingType == domain.FirstFiling {
					rec := domain.ApplyApproval(cloneSpec(o.Spec), domain.Subject{}, store.NewID("sub_"))
					s.subjects[rec.ID] = rec
					// The order now names the subject it created.
					o.Spec.SubjectID = rec.ID
				} else {
					rec, found, _ := s.record(o.Spec.SubjectID)
					if !found {
						return nil, errs.FailedPrecondition(domain.ReasonSubjectNotFound, "the order's subject has no live approved record")
					}
					s.subjects[rec.ID] = domain.ApplyApproval(cloneSpec(o.Spec), rec, "")
				}
			}
			addHistory(o, now, to, domain.ActorAdministration, req.GetComment())
			return &filingv1.RecordReviewOutcomeResponse{Order: render(o)}, nil
		})
}

// GetOrder returns one order, rendered with masked personal data.
func (s *Store) GetOrder(_ context.Context, id string) (*filingv1.Order, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, err := s.order(id)
	if err != nil {
		return nil, err
	}
	return render(o), nil
}

// ListOrders pages through orders newest first, optionally only those in state (StateUnspecified: all).
func (s *Store) ListOrders(_ context.Context, state domain.State, pageSize int, token string) ([]*filingv1.Order, string, error) {
	page, err := store.ParsePage(state, pageSize, token)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var match []*domain.Order
	for _, o := range s.orders {
		if (state == domain.StateUnspecified || o.State == state) && (page.After == nil || page.After.Before(o.CreatedAt, o.ID)) {
			match = append(match, o)
		}
	}
	slices.SortFunc(match, func(a, b *domain.Order) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	match, next := page.Next(match[:min(len(match), page.Size+1)])
	out := make([]*filingv1.Order, len(match))
	for i, o := range match {
		out[i] = render(o)
	}
	return out, next, nil
}
