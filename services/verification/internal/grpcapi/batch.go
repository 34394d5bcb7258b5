package grpcapi

import (
	"context"
	"sync"

	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// CloseIfIncompleteBatch applies a sweeper's claimed batch of deadlines: each item is checked and
// answered exactly as CloseIfIncomplete (the same handler runs it), and an item refused does not fail
// the others. The items run at once, so the store's group commit (CloseIfIncomplete's pkg/batch
// group) takes them into one transaction instead of one per item, and the sweeper makes one call
// instead of one per timer.
func (h *Internal) CloseIfIncompleteBatch(ctx context.Context, req *pb.CloseIfIncompleteBatchRequest) (*pb.CloseIfIncompleteBatchResponse, error) {
	if err := errs.CheckBatchSize(len(req.GetRequests())); err != nil {
		return nil, err
	}
	out := &pb.CloseIfIncompleteBatchResponse{Results: make([]*pb.CloseIfIncompleteResult, len(req.GetRequests()))}
	var wg sync.WaitGroup
	for i, r := range req.GetRequests() {
		wg.Go(func() {
			resp, err := h.CloseIfIncomplete(ctx, r)
			if err != nil {
				out.Results[i] = &pb.CloseIfIncompleteResult{Error: rpc.ItemErrorOf(ctx, pb.VerificationInternalService_CloseIfIncompleteBatch_FullMethodName, err)}
				return
			}
			out.Results[i] = &pb.CloseIfIncompleteResult{Response: resp}
		})
	}
	wg.Wait()
	return out, nil
}
