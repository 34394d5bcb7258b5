package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/storetest"
)

// A receipt parked where MarkSent did not see it (parked on an older snapshot, or a crash before it
// was applied) is applied by the next sweep, by the provider id or by the message id.
func TestSweepAppliesStrandedParkedReceipts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewSchema(t, "sms", store.Migrations, outbox.Migrations)
	clk := clock.NewFake(storetest.T0)
	s := store.New(pool, clk, storetest.SealKeys())
	for _, id := range []string{"by-pid", "by-id"} {
		m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: "13812345678", Template: domain.TemplateVerificationCode,
			Params: map[string]string{"code": "123456"}, ExpireAt: storetest.T0.Add(time.Hour), OrderID: "o-" + id, Sequence: 1},
			"ICP备案", storetest.T0)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
		claimed, err := s.Claim(ctx, storetest.T0, time.Minute, 1)
		if err != nil || len(claimed) != 1 {
			t.Fatalf("claim %v %v", claimed, err)
		}
		claimed[0].ProviderIDs = []string{"pid-" + id}
		if ok, err := s.MarkSent(ctx, claimed[0], "fake", storetest.T0, false); !ok || err != nil {
			t.Fatalf("MarkSent %v %v", ok, err)
		}
	}
	for key, delivered := range map[string]bool{"pid-by-pid": true, "id:by-id": false} {
		if _, err := pool.Exec(ctx, `INSERT INTO parked_receipts (provider, park_key, delivered, code, received_at)
			VALUES ('fake', $1, $2, 'X', $3)`, key, delivered, storetest.T0); err != nil {
			t.Fatal(err)
		}
	}
	// sentBefore before T0: nothing is at risk, only the stranded receipts are applied.
	if n, err := s.MarkAtRisk(ctx, storetest.T0, storetest.T0.Add(-time.Hour), 100); err != nil || n.Total() != 0 {
		t.Fatalf("MarkAtRisk = %+v, %v", n, err)
	}
	for id, want := range map[string]domain.State{"by-pid": domain.StateDelivered, "by-id": domain.StateUndelivered} {
		if m, err := s.Get(ctx, id); err != nil || m.State != want || m.DeliveryCode != "X" {
			t.Fatalf("%s = %+v, %v; want %s", id, m, err, want)
		}
	}
	var left int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM parked_receipts`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d parked receipts left, %v", left, err)
	}
}
