package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// testOpenChallengesPerPhone: with a cap of 2, a third order naming a phone already pending in two
// orders (of any tenants) is refused, and nothing of it changes; once one of the two is cancelled the
// third goes through. Resubmitting an order does not count the order against itself.
func testOpenChallengesPerPhone(t *testing.T, e *env) {
	ctx := context.Background()
	capped := app.New(e.engine, app.Config{MaxOpenChallengesPerPhone: 2})
	submit := func(a domain.Actor, id string) error {
		_, err := capped.SubmitOrder(ctx, a, &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: id})
		return err
	}
	create := func(a domain.Actor) string {
		resp, err := capped.CreateOrder(ctx, a, &filingv1.CreateOrderRequest{RequestId: domain.NewID("r")}, mustNormalize(t, firstFiling()))
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetOrder().GetOrderId()
	}
	first, second, third := create(PortalA), create(PortalB), create(PortalA)
	for _, id := range []string{first, second} {
		if err := submit(actorOf(id, second), id); err != nil {
			t.Fatal(err)
		}
	}
	err := submit(PortalA, third)
	var de *errs.Error
	if !errors.As(err, &de) || de.Reason != domain.ReasonTooManyOpenChallenges || de.Kind != errs.KindFailedPrecondition {
		t.Fatalf("third order on the phone: %v, want FailedPrecondition %s", err, domain.ReasonTooManyOpenChallenges)
	}
	if o := e.get(t, third); o.GetState() != filingv1.OrderState_ORDER_STATE_DRAFT || o.GetSubmission() != 0 {
		t.Fatalf("the refused order changed: %v", o.GetState())
	}
	if _, err := capped.CancelOrder(ctx, PortalB, &filingv1.CancelOrderRequest{RequestId: "c", OrderId: second}); err != nil {
		t.Fatal(err)
	}
	if err := submit(PortalA, third); err != nil {
		t.Fatalf("after a cancel freed a slot: %v", err)
	}
}

// actorOf is the owner of id among the orders of testOpenChallengesPerPhone.
func actorOf(id, second string) domain.Actor {
	if id == second {
		return PortalB
	}
	return PortalA
}

// testRacingSubmitsForTheLastSlot: orders racing for the one slot left on a phone: exactly one wins.
func testRacingSubmitsForTheLastSlot(t *testing.T, e *env) {
	ctx := context.Background()
	capped := app.New(e.engine, app.Config{MaxOpenChallengesPerPhone: 1})
	const racers = 6
	ids := make([]string, racers)
	for i := range ids {
		resp, err := capped.CreateOrder(ctx, PortalA, &filingv1.CreateOrderRequest{RequestId: domain.NewID("r")}, mustNormalize(t, firstFiling()))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = resp.GetOrder().GetOrderId()
	}
	var wg sync.WaitGroup
	results := make([]error, racers)
	for i, id := range ids {
		wg.Go(func() {
			_, results[i] = capped.SubmitOrder(ctx, PortalA, &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: id})
		})
	}
	wg.Wait()
	won := 0
	for _, err := range results {
		switch {
		case err == nil:
			won++
		case errs.Reason(err) != domain.ReasonTooManyOpenChallenges:
			t.Errorf("a racer failed otherwise: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d of %d racing submissions took the last slot, want exactly 1", won, racers)
	}
}

// testPhoneLocksBlockSubmissions: a ReturnOrder carrying a phone lock (verification spent the phone's
// failure budget) refuses every submission naming the phone, any tenant's, until the lock's time; a
// later, shorter lock does not shorten it; after it the phone is free.
func testPhoneLocksBlockSubmissions(t *testing.T, e *env) {
	ctx := context.Background()
	returned := e.create(t, firstFiling())
	e.submit(t, returned)
	until := e.clock.Now().Add(24 * time.Hour)
	for i, u := range []time.Time{until, until.Add(-time.Hour)} {
		if _, err := e.Store.ReturnOrder(ctx, &filingv1.ReturnOrderRequest{RequestId: fmt.Sprintf("ret-%d", i), OrderId: returned,
			Submission: 1, Reason: filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS,
			PhoneLocks: []*filingv1.PhoneLock{{Phone: "+8613812345678", Until: timestamppb.New(u)}}}); err != nil && i == 0 {
			t.Fatal(err)
		}
	}
	resp, err := e.Store.CreateOrder(ctx, PortalB, &filingv1.CreateOrderRequest{RequestId: "b"}, mustNormalize(t, firstFiling()))
	if err != nil {
		t.Fatal(err)
	}
	other := resp.GetOrder().GetOrderId()
	for _, c := range []struct {
		who domain.Actor
		id  string
	}{{PortalA, returned}, {PortalB, other}} {
		_, err := e.Store.SubmitOrder(ctx, c.who, &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: c.id})
		if errs.Reason(err) != domain.ReasonPhoneLocked || !strings.Contains(err.Error(), until.UTC().Format(time.RFC3339)) {
			t.Fatalf("submit %s naming a locked phone: %v, want %s with the time %s", c.id, err, domain.ReasonPhoneLocked, until)
		}
	}
	e.clock.Advance(24*time.Hour + time.Second)
	if _, err := e.Store.SubmitOrder(ctx, PortalB, &filingv1.SubmitOrderRequest{RequestId: domain.NewID("r"), OrderId: other}); err != nil {
		t.Fatalf("after the lock: %v", err)
	}
}
