package app

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// CreateOrder stores a new DRAFT order with a normalized spec.
func (a *App) CreateOrder(ctx context.Context, actor domain.Actor, req *filingv1.CreateOrderRequest, spec domain.Spec) (*filingv1.CreateOrderResponse, error) {
	if err := checkActor(actor); err != nil {
		return nil, err
	}
	wrap := func(o *filingv1.Order) *filingv1.CreateOrderResponse { return &filingv1.CreateOrderResponse{Order: o} }
	return answer[*filingv1.CreateOrderResponse](a.budgeted(ctx, actor, "", func(granted bool) (proto.Message, error) {
		return a.engine.CreateOrder(ctx, op(scoped(filingv1.FilingService_CreateOrder_FullMethodName, actor), req, wrap),
			func(now time.Time, record domain.RecordLookup) (domain.Order, error) {
				if err := domain.CheckSubject(spec, domain.Access{Actor: actor, Granted: granted}, record); err != nil {
					return domain.Order{}, err
				}
				o := domain.Order{ID: domain.NewID("ord_"), Spec: spec, CreatedAt: now, Tenant: actor.Tenant}
				o.Move(now, domain.StateDraft, actor.HistoryName(), "created")
				return o, nil
			})
	}))
}

// UpdateOrder replaces the spec of a DRAFT or RETURNED order.
func (a *App) UpdateOrder(ctx context.Context, actor domain.Actor, req *filingv1.UpdateOrderRequest, spec domain.Spec) (*filingv1.UpdateOrderResponse, error) {
	wrap := func(o *filingv1.Order) *filingv1.UpdateOrderResponse { return &filingv1.UpdateOrderResponse{Order: o} }
	return answer[*filingv1.UpdateOrderResponse](a.budgeted(ctx, actor, "", func(granted bool) (proto.Message, error) {
		return a.update(ctx, actor, op(scoped(filingv1.FilingService_UpdateOrder_FullMethodName, actor), req, wrap), req.GetOrderId(),
			func(o *domain.Order, now time.Time, record domain.RecordLookup) (Effects, error) {
				if err := domain.CheckUpdatable(o.State); err != nil {
					return Effects{}, err
				}
				if err := domain.CheckSubject(spec, domain.Access{Actor: actor, Granted: granted}, record); err != nil {
					return Effects{}, err
				}
				o.Spec, o.UpdatedAt = spec, now
				return Effects{}, nil
			})
	}))
}

// SubmitOrder computes the verifiers of a DRAFT or RETURNED order and opens a new submission: with
// verifiers the order awaits verification and owes verification.OpenSession and
// deadline.ScheduleDeadline; without, it goes straight to review. The comparison of an ADD_ACCESS
// order with a record its tenant does not hold takes one of the tenant's record-mismatch budget
// first (see budgeted); each mismatch it finds is an audit line.
func (a *App) SubmitOrder(ctx context.Context, actor domain.Actor, req *filingv1.SubmitOrderRequest) (*filingv1.SubmitOrderResponse, error) {
	wrap := func(o *filingv1.Order) *filingv1.SubmitOrderResponse { return &filingv1.SubmitOrderResponse{Order: o} }
	var subject string
	resp, err := a.budgeted(ctx, actor, req.GetOrderId(), func(granted bool) (proto.Message, error) {
		return a.update(ctx, actor, op(scoped(filingv1.FilingService_SubmitOrder_FullMethodName, actor), req, wrap), req.GetOrderId(),
			func(o *domain.Order, now time.Time, record domain.RecordLookup) (Effects, error) {
				if err := a.cfg.Submits.Check(*o, now); err != nil {
					return Effects{}, err
				}
				subject = o.Spec.SubjectID
				p, err := a.cfg.Rules.PlanSubmit(*o, now, a.cfg.VerificationWindow, domain.Access{Actor: actor, Granted: granted}, record)
				if err != nil {
					return Effects{}, err
				}
				o.Open(p, now, actor.HistoryName())
				// The ID tails go only to verification, in this message: no engine keeps them.
				return Effects{Messages: convert.SubmitMessages(*o, p, a.cfg.Locale),
					Slots: domain.SlotsOf(p, a.cfg.MaxOpenChallengesPerPhone)}, nil
			})
	})
	if errs.Reason(err) == domain.ReasonRecordMismatch {
		a.auditMismatch(actor, req.GetOrderId(), subject)
	}
	return answer[*filingv1.SubmitOrderResponse](resp, err)
}

// CancelOrder cancels a DRAFT, RETURNED or AWAITING_VERIFICATION order; cancelling an order in
// verification also closes its session and its deadline timer.
func (a *App) CancelOrder(ctx context.Context, actor domain.Actor, req *filingv1.CancelOrderRequest) (*filingv1.CancelOrderResponse, error) {
	wrap := func(o *filingv1.Order) *filingv1.CancelOrderResponse { return &filingv1.CancelOrderResponse{Order: o} }
	return answer[*filingv1.CancelOrderResponse](a.update(ctx, actor, op(scoped(filingv1.FilingService_CancelOrder_FullMethodName, actor), req, wrap), req.GetOrderId(),
		func(o *domain.Order, now time.Time, _ domain.RecordLookup) (Effects, error) {
			to, err := domain.Next(o.State, domain.EventCancel, true)
			if err != nil {
				return Effects{}, err
			}
			msgs := convert.CancelMessages(*o) // decided on the state before the cancel
			o.Move(now, to, actor.HistoryName(), req.GetReason())
			return Effects{Messages: msgs}, nil
		}))
}

// RecordReviewOutcome records the administration's decision; an approval creates or updates the
// subject's approved record in the same transaction.
func (a *App) RecordReviewOutcome(ctx context.Context, req *filingv1.RecordReviewOutcomeRequest) (*filingv1.RecordReviewOutcomeResponse, error) {
	wrap := func(o *filingv1.Order) *filingv1.RecordReviewOutcomeResponse {
		return &filingv1.RecordReviewOutcomeResponse{Order: o}
	}
	return answer[*filingv1.RecordReviewOutcomeResponse](a.engine.UpdateOrder(ctx,
		op(filingv1.FilingInternalService_RecordReviewOutcome_FullMethodName, req, wrap), req.GetOrderId(),
		func(o *domain.Order, now time.Time, record domain.RecordLookup) (Effects, error) {
			ev := domain.ReviewEvent(req.GetOutcome() == filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED)
			to, err := domain.Next(o.State, ev, true)
			if err != nil {
				return Effects{}, err
			}
			var eff Effects
			if ev == domain.EventApprove {
				rec, err := domain.Approve(o, record)
				if err != nil {
					return Effects{}, err
				}
				eff.Record = &rec
				if c, ok := domain.HolderChangeOf(*o); ok {
					eff.Holder = &c
				}
			}
			o.Move(now, to, domain.ActorAdministration, req.GetComment())
			return eff, nil
		}))
}

// GetOrder returns one of the actor's orders, rendered with masked personal data.
func (a *App) GetOrder(ctx context.Context, actor domain.Actor, id string) (*filingv1.Order, error) {
	o, err := a.engine.GetOrder(ctx, id)
	if err != nil {
		return nil, err
	}
	if !actor.Sees(o) {
		return nil, domain.OrderNotFound()
	}
	return convert.Order(o), nil
}

// ListOrders pages through orders newest first, optionally only those in state (StateUnspecified: all).
func (a *App) ListOrders(ctx context.Context, actor domain.Actor, state domain.State, pageSize int, token string) ([]*filingv1.Order, string, error) {
	if err := checkActor(actor); err != nil {
		return nil, "", err
	}
	page, err := parsePage(state, pageSize, token)
	if err != nil {
		return nil, "", err
	}
	orders, err := a.engine.ListOrders(ctx, actor.ListTenant(), state, page.After, page.Size+1)
	if err != nil {
		return nil, "", err
	}
	out, next := page.render(orders)
	return out, next, nil
}

// MarkVerified moves an order whose verification passed to UNDER_REVIEW: a batch of one.
func (a *App) MarkVerified(ctx context.Context, req *filingv1.MarkVerifiedRequest) (*filingv1.MarkVerifiedResponse, error) {
	o, err := a.outcomeOne(ctx, req)
	if err != nil {
		return nil, err
	}
	return &filingv1.MarkVerifiedResponse{Order: o}, nil
}

// ReturnOrder returns an order whose verification failed or timed out: a batch of one.
func (a *App) ReturnOrder(ctx context.Context, req *filingv1.ReturnOrderRequest) (*filingv1.ReturnOrderResponse, error) {
	o, err := a.outcomeOne(ctx, req)
	if err != nil {
		return nil, err
	}
	return &filingv1.ReturnOrderResponse{Order: o}, nil
}

// MarkVerifiedBatch applies many MarkVerified requests in one transaction, one result per request.
func (a *App) MarkVerifiedBatch(ctx context.Context, reqs []*filingv1.MarkVerifiedRequest) ([]batch.Result[*filingv1.Order], error) {
	return outcomes(ctx, a, reqs)
}

// ReturnOrderBatch applies many ReturnOrder requests in one transaction, one result per request.
func (a *App) ReturnOrderBatch(ctx context.Context, reqs []*filingv1.ReturnOrderRequest) ([]batch.Result[*filingv1.Order], error) {
	return outcomes(ctx, a, reqs)
}

func (a *App) outcomeOne(ctx context.Context, req proto.Message) (*filingv1.Order, error) {
	res, err := a.engine.VerificationOutcomes(ctx, []proto.Message{req})
	if err != nil {
		return nil, err
	}
	return res[0].Value, res[0].Err
}

func outcomes[R proto.Message](ctx context.Context, a *App, reqs []R) ([]batch.Result[*filingv1.Order], error) {
	msgs := make([]proto.Message, len(reqs))
	for i, r := range reqs {
		msgs[i] = r
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	return a.engine.VerificationOutcomes(ctx, msgs)
}

// update runs fn on one of the actor's orders: another tenant's order is answered as an unknown id,
// before any rule about its state can tell it exists.
func (a *App) update(ctx context.Context, actor domain.Actor, op Op, id string, fn UpdateFunc) (proto.Message, error) {
	if err := checkActor(actor); err != nil {
		return nil, err
	}
	return a.engine.UpdateOrder(ctx, op, id, func(o *domain.Order, now time.Time, record domain.RecordLookup) (Effects, error) {
		if !actor.Sees(*o) {
			return Effects{}, domain.OrderNotFound()
		}
		return fn(o, now, record)
	})
}
