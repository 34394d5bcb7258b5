package main

import (
	"context"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is what one closed-loop load run measured.
type loadResult struct {
	ops, errs int64
	elapsed   time.Duration
	lat       []time.Duration // every successful or expected-error op
}

func (r loadResult) rps() float64 { return float64(r.ops) / r.elapsed.Seconds() }

// merge is the result of two runs taken together (their latencies merged in order).
func (r loadResult) merge(o loadResult) loadResult {
	lat := append(slices.Clone(r.lat), o.lat...)
	slices.Sort(lat)
	return loadResult{ops: r.ops + o.ops, errs: r.errs + o.errs, elapsed: r.elapsed + o.elapsed, lat: lat}
}

func (r loadResult) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(r.lat)))) - 1
	return r.lat[max(0, min(i, len(r.lat)-1))]
}

// errStop makes a worker stop (e.g. the population is used up).
type stopErr struct{}

func (stopErr) Error() string { return "stop" }

// runLoad runs clients workers in a closed loop for d (or until op returns stopErr). op gets a
// globally increasing sequence number; it returns ok=false for an unexpected error.
func runLoad(ctx context.Context, clients int, d time.Duration, op func(ctx context.Context, seq int64) (bool, error)) loadResult {
	// In-flight calls finish after d (no deadline on them, so none is cut off); no new call starts.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	timer := time.AfterFunc(d, cancel)
	defer timer.Stop()
	rpcCtx := context.WithoutCancel(ctx)
	var seq, ops, errs atomic.Int64
	lats := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := seq.Add(1) - 1
				t0 := time.Now()
				ok, err := op(rpcCtx, n)
				if _, stop := err.(stopErr); stop {
					cancel()
					return
				}
				lats[w] = append(lats[w], time.Since(t0))
				ops.Add(1)
				if !ok {
					errs.Add(1)
				}
			}
		})
	}
	wg.Wait()
	res := loadResult{ops: ops.Load(), errs: errs.Load(), elapsed: time.Since(start)}
	for _, l := range lats {
		res.lat = append(res.lat, l...)
	}
	slices.Sort(res.lat)
	return res
}

// runN runs n ops on clients workers, as fast as they go; it returns the result.
func runN(ctx context.Context, clients int, n int64, op func(ctx context.Context, i int64) error) (loadResult, error) {
	var next, ops, errs atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= n {
					return
				}
				if err := op(ctx, i); err != nil {
					errs.Add(1)
					first.CompareAndSwap(nil, err)
					continue
				}
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	res := loadResult{ops: ops.Load(), errs: errs.Load(), elapsed: time.Since(start)}
	if e, ok := first.Load().(error); ok {
		return res, e
	}
	return res, nil
}
