package server

import (
	"fmt"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
)

// batchHandlers are the relay's batch calls: a claim's verdicts and cancels reach filing and
// deadline as one call and one transaction per target instead of one of each per row (in steady
// state every second passing Verify completes a session, a MarkVerified and a CancelDeadline each).
// perCall below 2 sends every row alone.
func batchHandlers(filing filingv1.FilingInternalServiceClient, deadline deadlinev1.DeadlineServiceClient, perCall int) map[string]outbox.BatchHandler {
	if perCall < 2 {
		return nil
	}
	return map[string]outbox.BatchHandler{
		convert.TargetMarkVerified: outbox.CallBatch(filing.MarkVerifiedBatch,
			func(reqs []*filingv1.MarkVerifiedRequest) *filingv1.MarkVerifiedBatchRequest {
				return &filingv1.MarkVerifiedBatchRequest{Requests: reqs}
			},
			func(resp *filingv1.MarkVerifiedBatchResponse) []error {
				out := make([]error, len(resp.GetResults()))
				for i, r := range resp.GetResults() {
					out[i] = rpc.ItemErr(r.GetError())
				}
				return out
			}),
		convert.TargetReturnOrder: outbox.CallBatch(filing.ReturnOrderBatch,
			func(reqs []*filingv1.ReturnOrderRequest) *filingv1.ReturnOrderBatchRequest {
				return &filingv1.ReturnOrderBatchRequest{Requests: reqs}
			},
			func(resp *filingv1.ReturnOrderBatchResponse) []error {
				out := make([]error, len(resp.GetResults()))
				for i, r := range resp.GetResults() {
					out[i] = rpc.ItemErr(r.GetError())
				}
				return out
			}),
		convert.TargetCancelDeadline: outbox.CallBatch(deadline.CancelDeadlines,
			func(reqs []*deadlinev1.CancelDeadlineRequest) *deadlinev1.CancelDeadlinesRequest {
				return &deadlinev1.CancelDeadlinesRequest{Requests: reqs}
			},
			func(resp *deadlinev1.CancelDeadlinesResponse) []error {
				out := make([]error, len(resp.GetResults()))
				for i, r := range resp.GetResults() {
					out[i] = rpc.ItemErr(r.GetError())
				}
				return out
			}),
	}
}

// checkRelayBatch checks --relay-batch: a receiver takes at most errs.MaxBatchItems requests a call.
func checkRelayBatch(n int) error {
	if n < 1 || n > errs.MaxBatchItems {
		return fmt.Errorf("--relay-batch must be between 1 and %d, not %d", errs.MaxBatchItems, n)
	}
	return nil
}
