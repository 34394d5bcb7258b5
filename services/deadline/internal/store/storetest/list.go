package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

func testList(t *testing.T, e *env) {
	s := e.Store
	ctx := context.Background()
	for i := range 7 {
		mustSchedule(t, s, fmt.Sprintf("o%d", 6-i), 1, T0.Add(time.Duration(i)*time.Minute))
	}
	mustSchedule(t, s, "o6", 2, T0.Add(time.Hour)) // cancels o6/1 (the soonest)
	// Same due time: by order id bytewise ("B" < "a"), then submission.
	mustSchedule(t, s, "a", 1, T0.Add(2*time.Hour))
	mustSchedule(t, s, "B", 1, T0.Add(2*time.Hour))
	all := listAll(t, s, "", 3)
	var got []string
	for _, d := range all {
		got = append(got, fmt.Sprintf("%s/%d", d.OrderID, d.Submission))
	}
	if want := "[o6/1 o5/1 o4/1 o3/1 o2/1 o1/1 o0/1 o6/2 B/1 a/1]"; fmt.Sprint(got) != want {
		t.Fatalf("list %v, want %s", got, want)
	}
	pending, err := s.List(ctx, domain.Pending, nil, 50)
	if err != nil || len(pending) != 9 {
		t.Fatalf("pending %d %v", len(pending), err)
	}
	if c := listAll(t, s, domain.Cancelled, 1); len(c) != 1 || c[0].Key != key("o6", 1) {
		t.Fatalf("cancelled %+v", c)
	}
	// A limit bounds the read; a position between rows resumes at the next one.
	after := domain.Position{DueAt: T0.Add(2 * time.Hour), OrderID: "A"}
	if rest, err := s.List(ctx, "", &after, 1); err != nil || len(rest) != 1 || rest[0].Key != key("B", 1) {
		t.Fatalf("after %+v: %+v %v", after, rest, err)
	}
}
