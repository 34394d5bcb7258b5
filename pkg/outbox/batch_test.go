package outbox_test

import (
	"context"
	"slices"
	"sync"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/outbox"
)

// batchPeer is a receiver's batch method: it answers each payload by its value ("ok...": delivered,
// "bad...": refused for good, "flaky...": unavailable until healed) and records its calls.
type batchPeer struct {
	mu     sync.Mutex
	calls  [][]string // the values of each call
	healed bool
}

func (p *batchPeer) handle(_ context.Context, payloads [][]byte) []error {
	var vals []string
	errs := make([]error, len(payloads))
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, b := range payloads {
		var v wrapperspb.StringValue
		if err := proto.Unmarshal(b, &v); err != nil {
			errs[i] = status.Error(codes.InvalidArgument, "bad payload")
			continue
		}
		vals = append(vals, v.Value)
		switch {
		case len(v.Value) >= 3 && v.Value[:3] == "bad":
			errs[i] = status.Error(codes.FailedPrecondition, "no")
		case len(v.Value) >= 5 && v.Value[:5] == "flaky" && !p.healed:
			errs[i] = status.Error(codes.Unavailable, "down")
		}
	}
	p.calls = append(p.calls, vals)
	return errs
}

func (p *batchPeer) seen() [][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.calls)
}

// A target's claimed rows go out in one batch call, and each row's result is its own: the refused
// row is parked (its sensitive payload wiped), the failing one retried after its backoff, the
// others delivered, on both queues.
func TestBatchHandlerMixedResults(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			clk := clock.NewFake(start)
			peer := &batchPeer{}
			var singles []string
			var mu sync.Mutex
			relay := &outbox.Relay{Queue: e.queue, Log: zap.NewNop(), Clock: clk,
				BatchHandlers: map[string]outbox.BatchHandler{"peer.Batch": peer.handle},
				Handlers: map[string]outbox.Handler{"other.Call": func(_ context.Context, b []byte) error {
					mu.Lock()
					defer mu.Unlock()
					singles = append(singles, string(b))
					return nil
				}}}
			for _, v := range []string{"ok1", "bad1", "flaky1", "ok2"} {
				e.add(t, clk.Now(), "peer.Batch", wrapperspb.String(v), v == "bad1")
			}
			e.add(t, clk.Now(), "other.Call", wrapperspb.String("single"), false)
			ctx := context.Background()
			if n, err := relay.RunOnce(ctx); err != nil || n != 5 {
				t.Fatalf("first run claimed %d, %v", n, err)
			}
			if got := peer.seen(); len(got) != 1 || !slices.Equal(got[0], []string{"ok1", "bad1", "flaky1", "ok2"}) {
				t.Fatalf("batch calls = %q, want one call of the four rows in claim order", got)
			}
			if len(singles) != 1 {
				t.Errorf("the target without a batch handler got %d calls, want 1", len(singles))
			}
			pending, err := e.queue.Pending(ctx, 10)
			if err != nil || len(pending) != 1 || pending[0].Attempts != 1 {
				t.Fatalf("pending after the batch = %v, %v; want the flaky row alone", pending, err)
			}
			if got := e.wipedDead(t); got != 1 {
				t.Errorf("parked rows with a wiped payload = %d, want 1 (bad1)", got)
			}
			if n, _ := relay.RunOnce(ctx); n != 0 {
				t.Fatalf("the failed row came back before its backoff: claimed %d", n)
			}
			peer.mu.Lock()
			peer.healed = true
			peer.mu.Unlock()
			clk.Advance(outbox.Backoff(1))
			if n, _ := relay.RunOnce(ctx); n != 1 {
				t.Fatalf("after the backoff claimed %d rows, want the flaky one", n)
			}
			if got := peer.seen(); len(got) != 2 || !slices.Equal(got[1], []string{"flaky1"}) {
				t.Errorf("second batch call = %q, want the retried row alone", got)
			}
			if left := e.left(t); left != 1 {
				t.Errorf("rows left = %d, want only the parked one", left)
			}
		})
	}
}

// MaxPerCall bounds a call: 5 rows at 2 a call are 3 calls, every row delivered once.
func TestBatchHandlerMaxPerCall(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			clk := clock.NewFake(start)
			peer := &batchPeer{}
			relay := &outbox.Relay{Queue: e.queue, Log: zap.NewNop(), Clock: clk, MaxPerCall: 2,
				BatchHandlers: map[string]outbox.BatchHandler{"peer.Batch": peer.handle}}
			for _, v := range []string{"ok1", "ok2", "ok3", "ok4", "ok5"} {
				e.add(t, clk.Now(), "peer.Batch", wrapperspb.String(v), false)
			}
			if n, err := relay.RunOnce(context.Background()); err != nil || n != 5 {
				t.Fatalf("claimed %d, %v", n, err)
			}
			var sizes []int
			var all []string
			for _, c := range peer.seen() {
				sizes = append(sizes, len(c))
				all = append(all, c...)
			}
			slices.Sort(sizes)
			slices.Sort(all)
			if !slices.Equal(sizes, []int{1, 2, 2}) || !slices.Equal(all, []string{"ok1", "ok2", "ok3", "ok4", "ok5"}) {
				t.Errorf("calls of sizes %v carrying %q, want 2+2+1 carrying each row once", sizes, all)
			}
			if left := e.left(t); left != 0 {
				t.Errorf("rows left = %d", left)
			}
		})
	}
}

// A receiver without the batch method yet (Unimplemented for the whole call) gets the rows one by one
// through the single Handler instead of having them parked; a batch handler answering the wrong
// number of results has every row retried, none lost or parked.
func TestBatchHandlerFallbackAndShortAnswer(t *testing.T) {
	t.Parallel()
	for name, newEngine := range engines(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEngine(t)
			clk := clock.NewFake(start)
			var single int
			relay := &outbox.Relay{Queue: e.queue, Log: zap.NewNop(), Clock: clk,
				BatchHandlers: map[string]outbox.BatchHandler{
					"old.Peer": func(_ context.Context, p [][]byte) []error {
						errs := make([]error, len(p))
						for i := range errs {
							errs[i] = status.Error(codes.Unimplemented, "unknown method")
						}
						return errs
					},
					"short.Peer": func(context.Context, [][]byte) []error { return []error{nil} },
				},
				Handlers: map[string]outbox.Handler{"old.Peer": func(context.Context, []byte) error { single++; return nil }}}
			for range 2 {
				e.add(t, clk.Now(), "old.Peer", wrapperspb.String("x"), false)
				e.add(t, clk.Now(), "short.Peer", wrapperspb.String("y"), false)
			}
			ctx := context.Background()
			if n, err := relay.RunOnce(ctx); err != nil || n != 4 {
				t.Fatalf("claimed %d, %v", n, err)
			}
			if single != 2 {
				t.Errorf("single deliveries after Unimplemented = %d, want 2", single)
			}
			pending, err := e.queue.Pending(ctx, 10)
			if err != nil || len(pending) != 2 || pending[0].Target != "short.Peer" || pending[1].Target != "short.Peer" {
				t.Fatalf("pending = %v, %v; want both rows of the short answer, for a retry", pending, err)
			}
		})
	}
}

// CallBatch sends the decoded requests in one call and maps the answer back to the payloads; a
// payload that does not decode is refused alone, and a failed call fails every decoded payload.
func TestCallBatch(t *testing.T) {
	t.Parallel()
	var sent []string
	fail := false
	call := func(_ context.Context, in []*wrapperspb.StringValue, _ ...grpc.CallOption) ([]error, error) {
		if fail {
			return nil, status.Error(codes.Unavailable, "down")
		}
		out := make([]error, len(in))
		sent = sent[:0]
		for i, v := range in {
			sent = append(sent, v.Value)
			if v.Value == "no" {
				out[i] = status.Error(codes.NotFound, "unknown")
			}
		}
		return out, nil
	}
	h := outbox.CallBatch(call, func(in []*wrapperspb.StringValue) []*wrapperspb.StringValue { return in },
		func(resp []error) []error { return resp })
	ok, _ := proto.Marshal(wrapperspb.String("yes"))
	no, _ := proto.Marshal(wrapperspb.String("no"))
	errs := h(context.Background(), [][]byte{ok, {0xff, 0xff}, no})
	if !slices.Equal(sent, []string{"yes", "no"}) {
		t.Errorf("sent %q, want the two payloads that decode", sent)
	}
	if errs[0] != nil || status.Code(errs[1]) != codes.InvalidArgument || status.Code(errs[2]) != codes.NotFound {
		t.Errorf("errors = %v", errs)
	}
	fail = true
	errs = h(context.Background(), [][]byte{ok, {0xff, 0xff}})
	if status.Code(errs[0]) != codes.Unavailable || status.Code(errs[1]) != codes.InvalidArgument {
		t.Errorf("errors of a failed call = %v", errs)
	}
}
