// Package grpcapi serves icp.filing.v1: the public FilingService and the internal
// FilingInternalService. Handlers check the request, turn the spec into its normalized domain form
// and call the use cases (package app); errors stay domain errors, which pkg/rpc maps to gRPC
// statuses at the edge.
package grpcapi

import (
	"context"

	"google.golang.org/grpc"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// Store is what the handlers need: the use cases (package app, on either storage engine), declared
// here by their consumer. Mutations are idempotent by request_id.
type Store interface {
	CreateOrder(ctx context.Context, actor domain.Actor, req *filingv1.CreateOrderRequest, spec domain.Spec) (*filingv1.CreateOrderResponse, error)
	UpdateOrder(ctx context.Context, actor domain.Actor, req *filingv1.UpdateOrderRequest, spec domain.Spec) (*filingv1.UpdateOrderResponse, error)
	SubmitOrder(ctx context.Context, actor domain.Actor, req *filingv1.SubmitOrderRequest) (*filingv1.SubmitOrderResponse, error)
	GetOrder(ctx context.Context, actor domain.Actor, orderID string) (*filingv1.Order, error)
	ListOrders(ctx context.Context, actor domain.Actor, state domain.State, pageSize int, pageToken string) ([]*filingv1.Order, string, error)
	CancelOrder(ctx context.Context, actor domain.Actor, req *filingv1.CancelOrderRequest) (*filingv1.CancelOrderResponse, error)
	MarkVerified(ctx context.Context, req *filingv1.MarkVerifiedRequest) (*filingv1.MarkVerifiedResponse, error)
	ReturnOrder(ctx context.Context, req *filingv1.ReturnOrderRequest) (*filingv1.ReturnOrderResponse, error)
	RecordReviewOutcome(ctx context.Context, req *filingv1.RecordReviewOutcomeRequest) (*filingv1.RecordReviewOutcomeResponse, error)
	// The batch forms of MarkVerified and ReturnOrder: one transaction, one result per request.
	MarkVerifiedBatch(ctx context.Context, reqs []*filingv1.MarkVerifiedRequest) ([]batch.Result[*filingv1.Order], error)
	ReturnOrderBatch(ctx context.Context, reqs []*filingv1.ReturnOrderRequest) ([]batch.Result[*filingv1.Order], error)
}

// Register registers both filing services on s.
func Register(public, internal grpc.ServiceRegistrar, st Store, rules domain.Rules) {
	filingv1.RegisterFilingServiceServer(public, &Public{store: st, rules: rules})
	filingv1.RegisterFilingInternalServiceServer(internal, &Internal{store: st})
}

// Public implements icp.filing.v1.FilingService.
type Public struct {
	filingv1.UnimplementedFilingServiceServer
	store Store
	rules domain.Rules
}

// Internal implements icp.filing.v1.FilingInternalService.
type Internal struct {
	filingv1.UnimplementedFilingInternalServiceServer
	store Store
}

// actorOf is the public caller as the edge authenticated it: its tenant owns the orders it creates.
func actorOf(ctx context.Context) domain.Actor {
	c := rpc.CallerFrom(ctx)
	return domain.Actor{ID: c.ID, Tenant: c.Tenant, CrossTenant: c.CrossTenant}
}

func (h *Public) spec(p *filingv1.OrderSpec) (domain.Spec, error) {
	if p == nil {
		return domain.Spec{}, errs.Invalid("spec", domain.ReasonMissingSpec, "spec is required")
	}
	return h.rules.Normalize(convert.SpecFromProto(p))
}

// CreateOrder stores a new DRAFT order.
func (h *Public) CreateOrder(ctx context.Context, req *filingv1.CreateOrderRequest) (*filingv1.CreateOrderResponse, error) {
	spec, err := h.spec(req.GetSpec())
	if err != nil {
		return nil, err
	}
	return h.store.CreateOrder(ctx, actorOf(ctx), req, spec)
}

// UpdateOrder replaces the content of a DRAFT or RETURNED order.
func (h *Public) UpdateOrder(ctx context.Context, req *filingv1.UpdateOrderRequest) (*filingv1.UpdateOrderResponse, error) {
	if err := orderid.Check("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	spec, err := h.spec(req.GetSpec())
	if err != nil {
		return nil, err
	}
	return h.store.UpdateOrder(ctx, actorOf(ctx), req, spec)
}

// SubmitOrder starts verification of an order (or sends it to review when nobody must verify).
func (h *Public) SubmitOrder(ctx context.Context, req *filingv1.SubmitOrderRequest) (*filingv1.SubmitOrderResponse, error) {
	if err := orderid.Check("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	return h.store.SubmitOrder(ctx, actorOf(ctx), req)
}

// GetOrder returns one order with masked personal data.
func (h *Public) GetOrder(ctx context.Context, req *filingv1.GetOrderRequest) (*filingv1.GetOrderResponse, error) {
	if err := orderid.Check("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	o, err := h.store.GetOrder(ctx, actorOf(ctx), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return &filingv1.GetOrderResponse{Order: o}, nil
}

// ListOrders pages through orders, newest first.
func (h *Public) ListOrders(ctx context.Context, req *filingv1.ListOrdersRequest) (*filingv1.ListOrdersResponse, error) {
	if req.GetPageSize() < 0 {
		return nil, errs.Invalid("page_size", pagetoken.ReasonInvalidPageSize, "page_size must not be negative")
	}
	state := domain.State(req.GetState())
	if state < domain.StateUnspecified || state > domain.StateCancelled {
		return nil, errs.Invalid("state", domain.ReasonInvalidState, "unknown order state")
	}
	orders, next, err := h.store.ListOrders(ctx, actorOf(ctx), state, int(req.GetPageSize()), req.GetPageToken())
	if err != nil {
		return nil, err
	}
	return &filingv1.ListOrdersResponse{Orders: orders, NextPageToken: next}, nil
}

// CancelOrder cancels a DRAFT, RETURNED or AWAITING_VERIFICATION order.
func (h *Public) CancelOrder(ctx context.Context, req *filingv1.CancelOrderRequest) (*filingv1.CancelOrderResponse, error) {
	if err := orderid.Check("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	if err := domain.CheckText("reason", req.GetReason(), domain.MaxReasonLength); err != nil {
		return nil, err
	}
	return h.store.CancelOrder(ctx, actorOf(ctx), req)
}

// MarkVerified moves an order whose verification passed to UNDER_REVIEW.
func (h *Internal) MarkVerified(ctx context.Context, req *filingv1.MarkVerifiedRequest) (*filingv1.MarkVerifiedResponse, error) {
	if err := checkMarkVerified(req); err != nil {
		return nil, err
	}
	return h.store.MarkVerified(ctx, req)
}

func checkMarkVerified(req *filingv1.MarkVerifiedRequest) error {
	return orderid.CheckSubmission(req.GetOrderId(), req.GetSubmission())
}

// ReturnOrder returns an order whose verification failed or timed out.
func (h *Internal) ReturnOrder(ctx context.Context, req *filingv1.ReturnOrderRequest) (*filingv1.ReturnOrderResponse, error) {
	if err := checkReturnOrder(req); err != nil {
		return nil, err
	}
	return h.store.ReturnOrder(ctx, req)
}

func checkReturnOrder(req *filingv1.ReturnOrderRequest) error {
	if err := orderid.CheckSubmission(req.GetOrderId(), req.GetSubmission()); err != nil {
		return err
	}
	switch req.GetReason() {
	case filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT, filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS:
	default:
		return errs.Invalid("reason", domain.ReasonInvalidReturnReason, "reason must be VERIFICATION_TIMEOUT or TOO_MANY_FAILED_ATTEMPTS")
	}
	if len(req.GetPhoneLocks()) > domain.CeilingMaxVerifiers {
		return errs.Invalid("phone_locks", domain.ReasonTooManyPhoneLocks, "at most %d phone locks", domain.CeilingMaxVerifiers)
	}
	for _, l := range req.GetPhoneLocks() {
		// The phone must be in the E.164 form filing stores verifiers in, or the lock would match nothing.
		e164, err := phone.Normalize("phone_locks.phone", l.GetPhone())
		if err != nil || e164 != l.GetPhone() || l.GetUntil() == nil || l.GetUntil().CheckValid() != nil {
			return errs.Invalid("phone_locks", domain.ReasonInvalidPhoneLock, "a phone lock needs an E.164 phone and a valid until")
		}
	}
	return nil
}

// RecordReviewOutcome records the administration's decision.
func (h *Internal) RecordReviewOutcome(ctx context.Context, req *filingv1.RecordReviewOutcomeRequest) (*filingv1.RecordReviewOutcomeResponse, error) {
	if err := orderid.Check("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	switch req.GetOutcome() {
	case filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED, filingv1.ReviewOutcome_REVIEW_OUTCOME_REJECTED:
	default:
		return nil, errs.Invalid("outcome", domain.ReasonInvalidOutcome, "outcome must be APPROVED or REJECTED")
	}
	if err := domain.CheckText("comment", req.GetComment(), domain.MaxCommentLength); err != nil {
		return nil, err
	}
	return h.store.RecordReviewOutcome(ctx, req)
}
