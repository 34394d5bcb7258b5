package outbox

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// BatchHandler delivers many payloads of one target in one call and returns one error per payload,
// in order (nil: delivered); each is treated as Handler's error would be, so one refused payload is
// parked and one failing transiently retried while the others are delivered. A call that fails as a
// whole returns its error for every payload.
type BatchHandler func(ctx context.Context, payloads [][]byte) []error

// CallBatch adapts a gRPC batch method to a BatchHandler: wrap builds the batch request from the
// payloads' requests, and split returns one error per request from the response (see rpc.ItemError). A
// payload that does not decode is refused alone; the others still go out.
func CallBatch[T any, PT interface {
	*T
	proto.Message
}, BReq, BResp any](call func(context.Context, BReq, ...grpc.CallOption) (BResp, error), wrap func([]PT) BReq,
	split func(BResp) []error) BatchHandler {
	return func(ctx context.Context, payloads [][]byte) []error {
		errs := make([]error, len(payloads))
		reqs := make([]PT, 0, len(payloads))
		idx := make([]int, 0, len(payloads)) // the payload of each request
		notes, _ := ctx.Value(batchNotesKey{}).([]*delivery)
		for i, p := range payloads {
			req := PT(new(T))
			if err := proto.Unmarshal(p, req); err != nil {
				errs[i] = status.Errorf(codes.InvalidArgument, "outbox payload: %v", err)
				continue
			}
			if i < len(notes) {
				notes[i].note(req)
			}
			reqs, idx = append(reqs, req), append(idx, i)
		}
		if len(reqs) == 0 {
			return errs
		}
		resp, err := call(ctx, wrap(reqs))
		var got []error
		if err == nil {
			if got = split(resp); len(got) != len(reqs) {
				err = status.Errorf(codes.Internal, "batch answer has %d results for %d requests", len(got), len(reqs))
			}
		}
		for j, i := range idx {
			if err != nil {
				errs[i] = err
			} else {
				errs[i] = got[j]
			}
		}
		return errs
	}
}

// relayCall is one call of a claimed batch: rows of one target for its BatchHandler h, or one row (h nil).
type relayCall struct {
	rows []Row
	h    BatchHandler
}

// calls splits a claimed batch into its calls: the opened rows of a target with a BatchHandler in
// claim order, MaxPerCall a call, and every other row alone.
func (r *Relay) calls(batch []Row) []relayCall {
	var out []relayCall
	byTarget := map[string]int{} // the index in out of the target's call being filled
	for _, x := range batch {
		h := r.BatchHandlers[x.Target]
		if h == nil || x.Unopened != nil {
			out = append(out, relayCall{rows: []Row{x}})
			continue
		}
		i, ok := byTarget[x.Target]
		if !ok || len(out[i].rows) == r.MaxPerCall {
			i = len(out)
			byTarget[x.Target] = i
			out = append(out, relayCall{h: h, rows: make([]Row, 0, min(r.MaxPerCall, len(batch)))})
		}
		out[i].rows = append(out[i].rows, x)
	}
	return out
}

// deliverMany makes one batch call of rows (one target's) and records each row's result as deliver
// records a single call's; it reports which rows were delivered.
func (r *Relay) deliverMany(ctx context.Context, rows []Row, h BatchHandler) []bool {
	target := rows[0].Target
	notes := make([]*delivery, len(rows))
	payloads := make([][]byte, len(rows))
	for i, x := range rows {
		notes[i], payloads[i] = &delivery{}, x.Payload
	}
	ctx, span := r.metrics.startBatchSpan(context.WithValue(ctx, batchNotesKey{}, notes), target, rows)
	callCtx, cancel := context.WithTimeout(ctx, r.CallTimeout)
	errs := h(callCtx, payloads)
	cancel()
	if len(errs) != len(rows) {
		err := status.Errorf(codes.Internal, "outbox: batch handler of %q answered %d results for %d rows", target, len(errs), len(rows))
		errs = make([]error, len(rows))
		for i := range errs {
			errs[i] = err
		}
	}
	if single := r.Handlers[target]; single != nil && allUnimplemented(errs) {
		span.End()
		r.Log.Warn("outbox: the receiver has no batch method yet; delivering one by one", zap.String("target", target))
		ok := make([]bool, len(rows))
		for i, x := range rows {
			ok[i] = r.deliver(ctx, x)
		}
		return ok
	}
	ok := make([]bool, len(rows))
	var failed error
	for i, x := range rows {
		if ok[i] = r.settle(ctx, x, errs[i], notes[i]); !ok[i] {
			failed = errs[i]
		}
	}
	endSpan(span, failed, &delivery{})
	return ok
}

// allUnimplemented tells whether every row of a batch call failed with Unimplemented.
func allUnimplemented(errs []error) bool {
	for _, err := range errs {
		if status.Code(err) != codes.Unimplemented {
			return false
		}
	}
	return len(errs) > 0
}
