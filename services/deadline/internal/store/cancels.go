package store

import (
	"context"

	"github.com/icpverify/icpverify/pkg/batch"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

// CancelBatch cancels the timers of reqs (checked by the handler) as Cancel cancels one, in one
// transaction of its own: a batch call's requests are together already, so they do not wait for
// the group commit of single calls (s.timers) but share its decisions (timerBatch, timerAll). Each
// request is idempotent by its request id under CancelDeadline's name; a request refused alone
// (its request id) fails alone. Calls of one order or request id run after the first, alone.
func (s *Store) CancelBatch(ctx context.Context, reqs []*deadlinev1.CancelDeadlineRequest) ([]batch.Result[domain.Deadline], error) {
	out := make([]batch.Result[domain.Deadline], len(reqs))
	calls := make([]timerCall, 0, len(reqs))
	idx := make([]int, 0, len(reqs))
	for i, r := range reqs {
		if err := idempotency.CheckRequestID(r.GetRequestId()); err != nil {
			out[i].Err = err
			continue
		}
		calls = append(calls, timerCall{method: methodCancel, requestID: r.GetRequestId(), req: r,
			key: domain.Key{OrderID: r.GetOrderId(), Submission: r.GetSubmission()}.Close()})
		idx = append(idx, i)
	}
	if len(calls) == 0 {
		return out, nil
	}
	for j, r := range s.timerBatch(ctx, calls) {
		out[idx[j]] = r
	}
	return out, nil
}
