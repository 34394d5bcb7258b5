// Package grpcapi serves icp.deadline.v1.DeadlineService: it validates requests, converts between
// protobuf and domain types and calls the store. Errors are domain errors; pkg/rpc maps them to
// gRPC statuses at the edge.
package grpcapi

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/services/deadline/internal/convert"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

// Store is what the handlers need; the PostgreSQL store implements it, and an in-memory engine can.
type Store interface {
	Schedule(ctx context.Context, requestID string, req proto.Message, k domain.Key, due time.Time) (domain.Deadline, error)
	// ScheduleNoon creates the noon resend timer of k's submission, due at resend.
	ScheduleNoon(ctx context.Context, requestID string, req proto.Message, k domain.Key, resend time.Time) (domain.Deadline, error)
	Cancel(ctx context.Context, requestID string, req proto.Message, k domain.Key) (domain.Deadline, error)
	// CancelBatch cancels the timers of reqs (each checked as CancelDeadline checks one) in one
	// transaction, one result per request: the timer as Cancel would answer it, or the request's error.
	CancelBatch(ctx context.Context, reqs []*deadlinev1.CancelDeadlineRequest) ([]batch.Result[domain.Deadline], error)
	Get(ctx context.Context, orderID string) (domain.Deadline, error)
	// List reads up to limit timers in domain.ListLess order, only those in state ("" = all),
	// strictly after after (nil: from the soonest).
	List(ctx context.Context, state domain.State, after *domain.Position, limit int) ([]domain.Deadline, error)
}

// Server implements DeadlineServiceServer.
type Server struct {
	deadlinev1.UnimplementedDeadlineServiceServer
	Store Store
}

// Register registers DeadlineService on the internal listener (deadline has no public API).
func Register(_, internal grpc.ServiceRegistrar, s *Server) {
	deadlinev1.RegisterDeadlineServiceServer(internal, s)
}

// New returns the handlers on store, which reads the clock itself after its locks.
func New(store Store) *Server { return &Server{Store: store} }

// ScheduleDeadline creates the timer of one submission; idempotent by (order_id, submission).
func (s *Server) ScheduleDeadline(ctx context.Context, req *deadlinev1.ScheduleDeadlineRequest) (*deadlinev1.ScheduleDeadlineResponse, error) {
	if err := idempotency.CheckRequestID(req.GetRequestId()); err != nil {
		return nil, err
	}
	k := domain.Key{OrderID: req.GetOrderId(), Submission: req.GetSubmission()}
	var due time.Time
	hasDue := req.GetDueTime() != nil
	if hasDue {
		if err := req.GetDueTime().CheckValid(); err != nil {
			return nil, errs.Invalid("due_time", domain.ReasonInvalidDueTime, "due_time is not a valid timestamp")
		}
		due = req.GetDueTime().AsTime()
	}
	if err := domain.ValidateSchedule(k, hasDue, due); err != nil {
		return nil, err
	}
	d, err := s.Store.Schedule(ctx, req.GetRequestId(), req, k, due)
	if err != nil {
		return nil, err
	}
	return &deadlinev1.ScheduleDeadlineResponse{Deadline: convert.ToProto(d)}, nil
}

// ScheduleNoonResend creates the noon resend timer of one submission; idempotent by (order_id,
// submission).
func (s *Server) ScheduleNoonResend(ctx context.Context, req *deadlinev1.ScheduleNoonResendRequest) (*deadlinev1.ScheduleNoonResendResponse, error) {
	if err := idempotency.CheckRequestID(req.GetRequestId()); err != nil {
		return nil, err
	}
	k := domain.Key{OrderID: req.GetOrderId(), Submission: req.GetSubmission(), Kind: domain.KindNoonResend}
	var at time.Time
	hasAt := req.GetResendTime() != nil
	if hasAt {
		if err := req.GetResendTime().CheckValid(); err != nil {
			return nil, errs.Invalid("resend_time", domain.ReasonInvalidDueTime, "resend_time is not a valid timestamp")
		}
		at = req.GetResendTime().AsTime()
	}
	if err := domain.ValidateTimer(k, "resend_time", hasAt, at); err != nil {
		return nil, err
	}
	d, err := s.Store.ScheduleNoon(ctx, req.GetRequestId(), req, k, at)
	if err != nil {
		return nil, err
	}
	return &deadlinev1.ScheduleNoonResendResponse{Timer: convert.ToProto(d)}, nil
}

// CancelDeadline cancels a pending timer; a fired or cancelled one comes back unchanged.
func (s *Server) CancelDeadline(ctx context.Context, req *deadlinev1.CancelDeadlineRequest) (*deadlinev1.CancelDeadlineResponse, error) {
	k, err := checkCancel(req)
	if err != nil {
		return nil, err
	}
	d, err := s.Store.Cancel(ctx, req.GetRequestId(), req, k)
	if err != nil {
		return nil, err
	}
	return &deadlinev1.CancelDeadlineResponse{Deadline: convert.ToProto(d)}, nil
}

// checkCancel checks a CancelDeadline request and returns the key of its timer.
func checkCancel(req *deadlinev1.CancelDeadlineRequest) (domain.Key, error) {
	if err := idempotency.CheckRequestID(req.GetRequestId()); err != nil {
		return domain.Key{}, err
	}
	k := domain.Key{OrderID: req.GetOrderId(), Submission: req.GetSubmission()}
	return k, domain.ValidateKey(k)
}

// GetDeadline returns the timer of the order's latest submission.
func (s *Server) GetDeadline(ctx context.Context, req *deadlinev1.GetDeadlineRequest) (*deadlinev1.GetDeadlineResponse, error) {
	if err := orderid.Check("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	d, err := s.Store.Get(ctx, req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return &deadlinev1.GetDeadlineResponse{Deadline: convert.ToProto(d)}, nil
}

// ListDeadlines pages through timers soonest first.
func (s *Server) ListDeadlines(ctx context.Context, req *deadlinev1.ListDeadlinesRequest) (*deadlinev1.ListDeadlinesResponse, error) {
	size, err := pagetoken.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	var state domain.State
	if req.GetState() != deadlinev1.DeadlineState_DEADLINE_STATE_UNSPECIFIED {
		if state = convert.StateFromProto(req.GetState()); state == "" {
			return nil, errs.Invalid("state", domain.ReasonInvalidState, "unknown state")
		}
	}
	after, err := decodePage(req.GetPageToken(), state)
	if err != nil {
		return nil, err
	}
	list, err := s.Store.List(ctx, state, after, size+1) // one more tells whether a next page exists
	if err != nil {
		return nil, err
	}
	resp := &deadlinev1.ListDeadlinesResponse{}
	if len(list) > size {
		list = list[:size]
		resp.NextPageToken = encodePage(list[len(list)-1], state)
	}
	for _, d := range list {
		resp.Deadlines = append(resp.Deadlines, convert.ToProto(d))
	}
	return resp, nil
}
