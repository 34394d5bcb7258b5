package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

func testGetNotFound(t *testing.T, e *env) {
	_, err := e.Store.Get(ctx, "nope")
	var de *errs.Error
	if !errors.As(err, &de) || de.Kind != errs.KindNotFound || de.Reason != domain.ReasonMessageNotFound {
		t.Fatalf("err = %v", err)
	}
}

func testListPagesNewestFirst(t *testing.T, e *env) {
	for i := range 7 {
		m := e.message(t, fmt.Sprintf("m-%d", i), fmt.Sprintf("+86138%08d", i), 24*time.Hour)
		if i%2 == 1 {
			m.OrderID = "order-2"
		}
		e.createMsg(t, m)
		e.clock.Advance(time.Second)
	}
	var ids []string
	var after *domain.Position
	for {
		page, err := e.Store.List(ctx, "", after, 3)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			ids = append(ids, m.ID)
		}
		if len(page) < 3 {
			break
		}
		p := domain.PositionOf(page[len(page)-1])
		after = &p
	}
	if fmt.Sprint(ids) != "[m-6 m-5 m-4 m-3 m-2 m-1 m-0]" {
		t.Fatalf("ids = %v", ids)
	}
	page, err := e.Store.List(ctx, "order-2", nil, 10)
	if err != nil || len(page) != 3 || page[0].ID != "m-5" {
		t.Fatalf("order filter: %v %v", page, err)
	}
	// Same instant: message_id descending, so a position between two ids resumes at the lower one.
	same := e.message(t, "m-4a", "+8613800000099", 24*time.Hour)
	same.CreatedAt = T0.Add(4 * time.Second)
	e.createMsg(t, same)
	at := domain.Position{CreatedAt: T0.Add(4 * time.Second), ID: "m-4b"}
	if rest, err := e.Store.List(ctx, "", &at, 2); err != nil || len(rest) != 2 || rest[0].ID != "m-4a" || rest[1].ID != "m-4" {
		t.Fatalf("after %+v: %v %v", at, rest, err)
	}
}
