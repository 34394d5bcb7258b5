package batch

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

// Every call gets its own answer, whatever the concurrency, and batches grow when calls pile up.
func TestEveryCallGetsItsAnswer(t *testing.T) {
	var batches, biggest atomic.Int64
	release := make(chan struct{})
	first := true
	var mu sync.Mutex
	g := &Group[int, string]{MaxBatch: 50, Run: func(_ context.Context, in []int) []Result[string] {
		mu.Lock()
		if first { // hold the first batch so that the others pile up behind it
			first = false
			mu.Unlock()
			<-release
		} else {
			mu.Unlock()
		}
		batches.Add(1)
		for {
			b := biggest.Load()
			if int64(len(in)) <= b || biggest.CompareAndSwap(b, int64(len(in))) {
				break
			}
		}
		out := make([]Result[string], len(in))
		for i, v := range in {
			out[i].Value = fmt.Sprint(v * 2)
		}
		return out
	}}
	const n = 200
	var wg sync.WaitGroup
	var wrong atomic.Int64
	started := make(chan struct{}, n)
	for i := range n {
		wg.Go(func() {
			started <- struct{}{}
			v, err := g.Do(context.Background(), i)
			if err != nil || v != fmt.Sprint(i*2) {
				wrong.Add(1)
			}
		})
	}
	for range n {
		<-started
	}
	waitQueued(g, n-1)
	close(release)
	wg.Wait()
	if wrong.Load() != 0 {
		t.Fatalf("%d calls got a wrong answer", wrong.Load())
	}
	if biggest.Load() != 50 {
		t.Errorf("biggest batch %d, want 50 (calls piled up behind a held batch)", biggest.Load())
	}
	if b := batches.Load(); b > n/50+2 {
		t.Errorf("%d batches for %d calls, want about %d", b, n, n/50+1)
	}
}

// waitQueued waits until k calls wait in the queue (each Do appends before it parks).
func waitQueued[In, Out any](g *Group[In, Out], k int) {
	for {
		g.mu.Lock()
		q := len(g.queue)
		g.mu.Unlock()
		if q >= k {
			return
		}
		runtime.Gosched()
	}
}

// A call whose context ends while it waits in the queue leaves and never runs; the others go on.
func TestCancelledWhileQueuedNeverRuns(t *testing.T) {
	release := make(chan struct{})
	var ran sync.Map
	g := &Group[int, int]{Run: func(_ context.Context, in []int) []Result[int] {
		for _, v := range in {
			ran.Store(v, true)
			if v == 0 {
				<-release
			}
		}
		return make([]Result[int], len(in))
	}}
	done := make(chan error, 3)
	go func() { _, err := g.Do(context.Background(), 0); done <- err }()
	waitRunning(g)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, err := g.Do(ctx, 1); done <- err }()
	go func() { _, err := g.Do(context.Background(), 2); done <- err }()
	waitQueued(g, 2)
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v, want context.Canceled", err)
	}
	close(release)
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := ran.Load(1); ok {
		t.Error("the cancelled call's input ran")
	}
	if _, ok := ran.Load(2); !ok {
		t.Error("the call queued behind the cancelled one never ran (the lead was lost)")
	}
}

// The lead handed to a call whose context ends at that moment is not lost.
func TestLeadIsNeverLost(t *testing.T) {
	g := &Group[int, int]{Flights: 1, MaxBatch: 1, Run: func(_ context.Context, in []int) []Result[int] {
		return make([]Result[int], len(in))
	}}
	for round := range 200 {
		var wg sync.WaitGroup
		for i := range 8 {
			ctx, cancel := context.WithCancel(context.Background())
			wg.Go(func() {
				defer cancel()
				if i%2 == 0 {
					go cancel()
				}
				_, _ = g.Do(ctx, i)
			})
		}
		wg.Wait()
		// A lost lead would leave this call queued with nobody to run it.
		if _, err := g.Do(context.Background(), 99); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
}

// A panicking or short Run fails every call of its batch instead of leaving them waiting.
func TestRunFailureReachesEveryCall(t *testing.T) {
	g := &Group[int, int]{Run: func(_ context.Context, in []int) []Result[int] { panic("boom") }}
	if _, err := g.Do(context.Background(), 1); err == nil {
		t.Fatal("want the panic as an error")
	}
	g = &Group[int, int]{Run: func(_ context.Context, in []int) []Result[int] { return nil }}
	if _, err := g.Do(context.Background(), 1); !errors.Is(err, errShortAnswer) {
		t.Fatalf("got %v, want errShortAnswer", err)
	}
}

func waitRunning[In, Out any](g *Group[In, Out]) {
	for {
		g.mu.Lock()
		l, q := g.leaders, len(g.queue)
		g.mu.Unlock()
		if l == 1 && q == 0 {
			return
		}
		runtime.Gosched()
	}
}

// With several flights a leader's own call can be answered by another leader's batch: every caller
// still returns, no batch is empty, and no more batches run at once than there are flights.
func TestSeveralFlightsNeverSpinNorOverlap(t *testing.T) {
	var empty, running, most atomic.Int64
	g := &Group[int, int]{Flights: 3, MaxBatch: 4, Run: func(_ context.Context, in []int) []Result[int] {
		if len(in) == 0 {
			empty.Add(1)
		}
		r := running.Add(1)
		for {
			m := most.Load()
			if r <= m || most.CompareAndSwap(m, r) {
				break
			}
		}
		runtime.Gosched()
		running.Add(-1)
		out := make([]Result[int], len(in))
		for i, v := range in {
			out[i].Value = v
		}
		return out
	}}
	for round := range 300 {
		var wg sync.WaitGroup
		start := make(chan struct{})
		var wrong atomic.Int64
		for i := range 32 {
			wg.Go(func() {
				<-start
				if v, err := g.Do(context.Background(), i); err != nil || v != i {
					wrong.Add(1)
				}
			})
		}
		close(start)
		wg.Wait()
		if wrong.Load() != 0 {
			t.Fatalf("round %d: %d wrong answers", round, wrong.Load())
		}
	}
	if empty.Load() != 0 {
		t.Errorf("%d empty batches ran", empty.Load())
	}
	if most.Load() > 3 {
		t.Errorf("%d batches ran at once with 3 flights", most.Load())
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.leaders != 0 || len(g.queue) != 0 {
		t.Errorf("after the calls: %d leaders, %d queued; want 0, 0 (a flight leaked)", g.leaders, len(g.queue))
	}
}

// AllOrEach runs the inputs together; one whose key meets an earlier one's runs alone after the
// batch, and a batch that fails as a whole is run input by input.
func TestAllOrEach(t *testing.T) {
	var batches [][]string
	all := func(_ context.Context, in []string) ([]Result[string], error) {
		batches = append(batches, slices.Clone(in))
		if slices.Contains(in, "poison") && len(in) > 1 {
			return nil, errors.New("the whole batch failed")
		}
		out := make([]Result[string], len(in))
		for i, v := range in {
			out[i].Value = "all:" + v
		}
		return out, nil
	}
	one := func(_ context.Context, v string) Result[string] {
		if v == "poison" {
			return Result[string]{Err: errors.New("poison")}
		}
		return Result[string]{Value: "one:" + v}
	}
	key := func(v string) []string { return []string{v[:1]} } // inputs with the same first letter conflict

	got := AllOrEach(context.Background(), []string{"a1", "b1", "a2"}, key, all, one)
	if fmt.Sprint(batches) != "[[a1 b1]]" || got[0].Value != "all:a1" || got[1].Value != "all:b1" || got[2].Value != "one:a2" {
		t.Fatalf("batches %v, results %v", batches, got)
	}

	batches = nil
	got = AllOrEach(context.Background(), []string{"x", "poison", "y"}, nil, all, one)
	if got[0].Value != "one:x" || got[1].Err == nil || got[2].Value != "one:y" {
		t.Fatalf("after a failed batch %v: results %v, want each input alone with only poison failing", batches, got)
	}
}
