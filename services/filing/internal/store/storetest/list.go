package storetest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

func testListOrdersPages(t *testing.T, e *env) {
	ctx := context.Background()
	var ids []string
	for range 5 {
		ids = append(ids, e.create(t, firstFiling()))
		e.clock.Advance(time.Second)
	}
	e.submit(t, ids[1])
	var got []string
	token := ""
	for {
		page, next, err := e.Store.ListOrders(ctx, PortalA, domain.StateUnspecified, 2, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			got = append(got, o.GetOrderId())
		}
		if next == "" {
			break
		}
		token = next
	}
	want := []string{ids[4], ids[3], ids[2], ids[1], ids[0]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pages = %v, want %v", got, want)
	}
	awaiting, next, err := e.Store.ListOrders(ctx, PortalA, domain.StateAwaitingVerification, 0, "")
	if err != nil || len(awaiting) != 1 || awaiting[0].GetOrderId() != ids[1] || next != "" || len(awaiting[0].GetVerifiers()) != 2 {
		t.Fatalf("filtered = %v %q %v", awaiting, next, err)
	}
	_, _, err = e.Store.ListOrders(ctx, PortalA, domain.StateDraft, 2, token)
	wantReason(t, err, pagetoken.ReasonInvalidPageToken)
}

func testAnswersAreCopies(t *testing.T, e *env) {
	id := e.create(t, firstFiling())
	o := e.submit(t, id)
	want := proto.Clone(o)
	o.GetVerifiers()[0].Roles[0] = "changed"
	o.GetHistory()[0].Reason = "changed"
	o.GetSpec().GetWebsites()[0].Domain = "changed"
	if got := e.get(t, id); !proto.Equal(got, want) {
		t.Fatalf("a change to an answer reached the store: %v", got)
	}
	got := e.get(t, id)
	got.GetVerifiers()[0].Roles[0] = "changed"
	if again := e.get(t, id); !proto.Equal(again, want) {
		t.Fatalf("a change to an answer reached the store: %v", again)
	}
}

// testListOrdersSameInstant pages through orders created at one instant: the order id breaks the
// tie, bytewise, and no order is skipped or repeated across pages.
func testListOrdersSameInstant(t *testing.T, e *env) {
	var want []string
	for range 7 {
		want = append(want, e.create(t, firstFiling()))
	}
	slices.Sort(want)
	slices.Reverse(want)
	var got []string
	token := ""
	for {
		page, next, err := e.Store.ListOrders(context.Background(), PortalA, domain.StateDraft, 3, token)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page {
			got = append(got, o.GetOrderId())
		}
		if next == "" {
			break
		}
		token = next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages = %v, want %v", got, want)
	}
}
