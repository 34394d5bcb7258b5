package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/pagetoken"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

func testList(t *testing.T, e Engine, _ *clock.Fake) {
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
	pending, next, err := s.List(ctx, domain.Pending, 50, "")
	if err != nil || len(pending) != 9 || next != "" {
		t.Fatalf("pending %d %q %v", len(pending), next, err)
	}
	if c := listAll(t, s, domain.Cancelled, 1); len(c) != 1 || c[0].Key != key("o6", 1) {
		t.Fatalf("cancelled %+v", c)
	}
	_, next, _ = s.List(ctx, domain.Pending, 2, "")
	if _, _, err := s.List(ctx, domain.Cancelled, 2, next); errs.Reason(err) != pagetoken.ReasonInvalidPageToken {
		t.Fatalf("token for another filter: %v", err)
	}
	if _, _, err := s.List(ctx, "", 2, "%%%"); errs.Reason(err) != pagetoken.ReasonInvalidPageToken {
		t.Fatalf("garbage token: %v", err)
	}
}
