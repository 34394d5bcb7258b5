package grpcapi

import (
	"context"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// MarkVerifiedBatch applies many MarkVerified requests in one transaction: each item is checked and
// answered as MarkVerified would answer it, and an item refused does not fail the others.
func (h *Internal) MarkVerifiedBatch(ctx context.Context, req *filingv1.MarkVerifiedBatchRequest) (*filingv1.MarkVerifiedBatchResponse, error) {
	res, err := applyBatch(ctx, req.GetRequests(), checkMarkVerified, h.store.MarkVerifiedBatch)
	if err != nil {
		return nil, err
	}
	out := &filingv1.MarkVerifiedBatchResponse{Results: make([]*filingv1.MarkVerifiedResult, len(res))}
	for i, r := range res {
		out.Results[i] = &filingv1.MarkVerifiedResult{}
		if r.Err != nil {
			out.Results[i].Error = rpc.ItemErrorOf(ctx, filingv1.FilingInternalService_MarkVerifiedBatch_FullMethodName, r.Err)
		} else {
			out.Results[i].Response = &filingv1.MarkVerifiedResponse{Order: r.Value}
		}
	}
	return out, nil
}

// ReturnOrderBatch applies many ReturnOrder requests in one transaction, as MarkVerifiedBatch does.
func (h *Internal) ReturnOrderBatch(ctx context.Context, req *filingv1.ReturnOrderBatchRequest) (*filingv1.ReturnOrderBatchResponse, error) {
	res, err := applyBatch(ctx, req.GetRequests(), checkReturnOrder, h.store.ReturnOrderBatch)
	if err != nil {
		return nil, err
	}
	out := &filingv1.ReturnOrderBatchResponse{Results: make([]*filingv1.ReturnOrderResult, len(res))}
	for i, r := range res {
		out.Results[i] = &filingv1.ReturnOrderResult{}
		if r.Err != nil {
			out.Results[i].Error = rpc.ItemErrorOf(ctx, filingv1.FilingInternalService_ReturnOrderBatch_FullMethodName, r.Err)
		} else {
			out.Results[i].Response = &filingv1.ReturnOrderResponse{Order: r.Value}
		}
	}
	return out, nil
}

// applyBatch checks each request as the single handler does and applies those that pass in one
// call of apply; it returns one result per request, in order.
func applyBatch[R any](ctx context.Context, reqs []R, check func(R) error,
	apply func(context.Context, []R) ([]batch.Result[*filingv1.Order], error)) ([]batch.Result[*filingv1.Order], error) {
	if err := errs.CheckBatchSize(len(reqs)); err != nil {
		return nil, err
	}
	out := make([]batch.Result[*filingv1.Order], len(reqs))
	valid := make([]R, 0, len(reqs))
	idx := make([]int, 0, len(reqs))
	for i, r := range reqs {
		if err := check(r); err != nil {
			out[i].Err = err
			continue
		}
		valid, idx = append(valid, r), append(idx, i)
	}
	if len(valid) == 0 {
		return out, nil
	}
	res, err := apply(ctx, valid)
	if err != nil {
		return nil, err
	}
	for j, i := range idx {
		out[i] = res[j]
	}
	return out, nil
}
