package grpcapi

import (
	"context"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/deadline/internal/convert"
)

// CancelDeadlines cancels many timers in one transaction: each item is checked and answered as
// CancelDeadline would answer it, and an item refused does not fail the others.
func (s *Server) CancelDeadlines(ctx context.Context, req *deadlinev1.CancelDeadlinesRequest) (*deadlinev1.CancelDeadlinesResponse, error) {
	if err := errs.CheckBatchSize(len(req.GetRequests())); err != nil {
		return nil, err
	}
	out := &deadlinev1.CancelDeadlinesResponse{Results: make([]*deadlinev1.CancelDeadlineResult, len(req.GetRequests()))}
	valid := make([]*deadlinev1.CancelDeadlineRequest, 0, len(req.GetRequests()))
	idx := make([]int, 0, len(req.GetRequests()))
	for i, r := range req.GetRequests() {
		if _, err := checkCancel(r); err != nil {
			out.Results[i] = &deadlinev1.CancelDeadlineResult{Error: rpc.ItemErrorOf(ctx, deadlinev1.DeadlineService_CancelDeadlines_FullMethodName, err)}
			continue
		}
		valid, idx = append(valid, r), append(idx, i)
	}
	if len(valid) == 0 {
		return out, nil
	}
	res, err := s.Store.CancelBatch(ctx, valid)
	if err != nil {
		return nil, err
	}
	for j, i := range idx {
		if res[j].Err != nil {
			out.Results[i] = &deadlinev1.CancelDeadlineResult{Error: rpc.ItemErrorOf(ctx, deadlinev1.DeadlineService_CancelDeadlines_FullMethodName, res[j].Err)}
		} else {
			out.Results[i] = &deadlinev1.CancelDeadlineResult{Response: &deadlinev1.CancelDeadlineResponse{Deadline: convert.ToProto(res[j].Value)}}
		}
	}
	return out, nil
}
