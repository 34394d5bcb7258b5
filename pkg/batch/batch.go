// Package batch coalesces concurrent calls into batches (group commit): calls that arrive while a
// batch is in flight wait, and the next batch takes them all in one go. Under load a batch grows with
// the concurrency, so one database round trip and one commit serve many calls; a lone call runs at
// once, alone, without waiting for company.
//
// There is no background goroutine: the first caller to find a free flight leads (runs batches
// until its own call is done) and then hands the lead to the oldest waiting call.
package batch

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Result is one call's answer from a batch.
type Result[Out any] struct {
	Value Out
	Err   error
}

// Group runs batches of In with Run. The zero value is not usable: set Run (and optionally
// MaxBatch and Flights) before the first Do, and do not change them afterwards.
type Group[In, Out any] struct {
	// Run executes one batch and returns one Result per input, in order. ctx carries no
	// cancellation from any one caller (a batch is shared): Run bounds its own work.
	Run func(ctx context.Context, in []In) []Result[Out]
	// MaxBatch bounds a batch (64 when 0).
	MaxBatch int
	// Flights bounds the batches in flight at once (1 when 0).
	Flights int

	mu      sync.Mutex
	queue   []*call[In, Out]
	leaders int
}

type call[In, Out any] struct {
	in  In
	res Result[Out]
	// wake receives true when this call must lead, false when its result is set.
	wake chan bool
	// led marks that the lead was handed to this call (under mu), queued that it still waits in queue.
	led, queued bool
}

// Do adds in to the next batch and returns its result. A caller whose ctx ends while its call
// still waits in the queue leaves with ctx.Err() and its input never runs; once its batch runs, the
// caller leaves with ctx.Err() without knowing whether its input took effect, like any RPC that
// times out. A caller that was handed the lead just as its ctx ended leads anyway (others wait for
// that batch) and returns its result.
func (g *Group[In, Out]) Do(ctx context.Context, in In) (Out, error) {
	c := &call[In, Out]{in: in, wake: make(chan bool, 1), queued: true}
	g.mu.Lock()
	g.queue = append(g.queue, c)
	lead := g.leaders < max(g.Flights, 1)
	if lead {
		g.leaders++
		c.led = true
	}
	g.mu.Unlock()
	if !lead {
		select {
		case lead = <-c.wake:
		case <-ctx.Done():
			g.mu.Lock()
			if !c.led && c.queued {
				g.remove(c)
				g.mu.Unlock()
				var zero Out
				return zero, ctx.Err()
			}
			lead = c.led
			g.mu.Unlock()
			if !lead { // in a running batch: its outcome is unknown to this caller
				var zero Out
				return zero, ctx.Err()
			}
			<-c.wake // the lead token that was sent
		}
		if !lead {
			return c.res.Value, c.res.Err
		}
	}
	g.lead(ctx, c)
	return c.res.Value, c.res.Err
}

// lead runs batches from the head of the queue until c's own is done, then gives up its flight.
// With several flights, c may land in another leader's batch: then c's result arrives on c.wake
// and this leader stops leading as soon as it sees it (or finds nothing left to take).
func (g *Group[In, Out]) lead(ctx context.Context, c *call[In, Out]) {
	runCtx := context.WithoutCancel(ctx)
	limit := g.MaxBatch
	if limit <= 0 {
		limit = 64
	}
	for {
		g.mu.Lock()
		n := min(limit, len(g.queue))
		calls := make([]*call[In, Out], n)
		copy(calls, g.queue[:n])
		g.queue = g.queue[n:]
		for _, k := range calls {
			k.queued = false
		}
		if n == 0 { // c is in another leader's batch
			g.release()
			g.mu.Unlock()
			<-c.wake
			return
		}
		g.mu.Unlock()

		ins := make([]In, n)
		for i, k := range calls {
			ins[i] = k.in
		}
		results := g.run(runCtx, ins)
		mine := false
		for i, k := range calls {
			k.res = results[i]
			if k == c {
				mine = true
			} else {
				k.wake <- false
			}
		}
		if !mine {
			select {
			case <-c.wake: // another leader's batch answered c
				mine = true
			default:
			}
		}
		if mine {
			g.mu.Lock()
			g.release()
			g.mu.Unlock()
			return
		}
	}
}

// release gives up a flight (under mu): to the oldest queued call that does not lead already, or
// back to the pool when none waits.
func (g *Group[In, Out]) release() {
	for _, k := range g.queue {
		if !k.led {
			k.led = true
			k.wake <- true
			return
		}
	}
	g.leaders--
}

// run calls Run, turning a panic or a short answer into errors for every input, so that no
// caller waits forever.
func (g *Group[In, Out]) run(ctx context.Context, ins []In) (out []Result[Out]) {
	defer func() {
		if p := recover(); p != nil {
			out = failAll[Out](len(ins), &panicError{p})
		}
	}()
	out = g.Run(ctx, ins)
	if len(out) != len(ins) {
		return failAll[Out](len(ins), errShortAnswer)
	}
	return out
}

func (g *Group[In, Out]) remove(c *call[In, Out]) {
	for i, k := range g.queue {
		if k == c {
			g.queue = append(g.queue[:i], g.queue[i+1:]...)
			return
		}
	}
}

func failAll[Out any](n int, err error) []Result[Out] {
	out := make([]Result[Out], n)
	for i := range out {
		out[i].Err = err
	}
	return out
}

type panicError struct{ v any }

func (e *panicError) Error() string { return fmt.Sprintf("batch: Run panicked: %v", e.v) }

var errShortAnswer = errors.New("batch: Run returned a result count other than its input count")

// AllOrEach is the usual Run of a store: it runs ins together with all and, if that batch fails as
// a whole (a deadlock with another replica, a lost connection), runs each input alone with one, so
// that one input's error is only its own. An input whose keys (key may be nil) meet an earlier
// input's is held out of the batch and runs alone after it: in one transaction it would not see the
// earlier input's writes.
func AllOrEach[In, Out any](ctx context.Context, ins []In, key func(In) []string,
	all func(context.Context, []In) ([]Result[Out], error), one func(context.Context, In) Result[Out]) []Result[Out] {
	out := make([]Result[Out], len(ins))
	var first, later []int
	seen := map[string]bool{}
	for i, in := range ins {
		var keys []string
		if key != nil {
			keys = key(in)
		}
		if slices.ContainsFunc(keys, func(k string) bool { return seen[k] }) {
			later = append(later, i)
			continue
		}
		for _, k := range keys {
			seen[k] = true
		}
		first = append(first, i)
	}
	part := make([]In, len(first))
	for j, i := range first {
		part[j] = ins[i]
	}
	if res, err := all(ctx, part); err == nil {
		for j, i := range first {
			out[i] = res[j]
		}
	} else {
		later = append(first, later...)
		slices.Sort(later)
	}
	for _, i := range later {
		out[i] = one(ctx, ins[i])
	}
	return out
}
