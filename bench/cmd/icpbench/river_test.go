package main

import (
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// A job begun before its scheduled time counts as early, however little; at or after it does not.
func TestStartLogCountsEarlyStarts(t *testing.T) {
	T := time.Date(2026, 12, 4, 1, 0, 0, 0, time.UTC)
	var l startLog
	l.record(T, T)                                  // on time
	l.record(T.Add(time.Millisecond), T)            // late
	l.record(T.Add(-time.Nanosecond), T)            // early by 1 ns
	l.record(T.Add(-1500*time.Millisecond), T)      // early by 1.5 s
	l.record(T.Add(48*time.Hour), T.Add(time.Hour)) // far-future job run late
	l.failed()
	started, early, failed, worst := l.counts()
	if started != 5 || early != 2 || failed != 1 || worst != 1500*time.Millisecond {
		t.Fatalf("started %d early %d failed %d worst %s; want 5 2 1 1.5s", started, early, failed, worst)
	}
}

// River's workers record concurrently.
func TestStartLogConcurrent(t *testing.T) {
	T := time.Now()
	var l startLog
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Go(func() {
			if i%10 == 0 {
				l.record(T.Add(-time.Second), T)
			} else {
				l.record(T.Add(time.Second), T)
			}
		})
	}
	wg.Wait()
	if started, early, _, _ := l.counts(); started != 100 || early != 10 {
		t.Fatalf("started %d early %d; want 100 10", started, early)
	}
}

// Every verifier is drawn once, and each session's second verifier comes window checks after its
// first (fewer in the last, partial block); window 1 is back to back.
func TestPairedOrder(t *testing.T) {
	for _, tc := range []struct{ sessions, window int }{{10, 1}, {10, 3}, {1000, 64}, {5, 64}, {7, 0}} {
		order := pairedOrder(tc.sessions, tc.window, rand.New(rand.NewPCG(1, 2)))
		if len(order) != 2*tc.sessions {
			t.Fatalf("%+v: %d checks, want %d", tc, len(order), 2*tc.sessions)
		}
		pos := map[int32]int{}
		for i, v := range order {
			if _, dup := pos[v]; dup || v < 0 || int(v) >= 2*tc.sessions {
				t.Fatalf("%+v: verifier %d drawn twice or out of range", tc, v)
			}
			pos[v] = i
		}
		w := max(tc.window, 1)
		for s := range int32(tc.sessions) {
			first, second := pos[2*s], pos[2*s+1]
			block := first / (2 * w) // the session's block, found from its first check's position
			size := min(w, tc.sessions-block*w)
			if second-first != size {
				t.Fatalf("%+v: session %d checked at %d and %d, want %d apart", tc, s, first, second, size)
			}
		}
	}
	// The sessions are shuffled: not every session's first check is in session order.
	order := pairedOrder(100, 1, rand.New(rand.NewPCG(1, 2)))
	inOrder := true
	for i := 0; i < len(order); i += 2 {
		inOrder = inOrder && order[i] == int32(i)
	}
	if inOrder {
		t.Fatal("sessions not shuffled")
	}
}

func TestTargetFigure(t *testing.T) {
	for in, want := range map[string]string{"filing.MarkVerified": "filing_markverified", "smsdispatch.SendMessage": "smsdispatch_sendmessage",
		"deadline.CancelDeadline": "deadline_canceldeadline"} {
		if got := targetFigure(in); got != want {
			t.Errorf("targetFigure(%q) = %q, want %q", in, got, want)
		}
	}
}
