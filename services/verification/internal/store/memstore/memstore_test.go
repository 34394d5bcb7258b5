package memstore_test

import (
	"testing"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/verification/internal/app"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
	"github.com/icpverify/icpverify/services/verification/internal/store/memstore"
	"github.com/icpverify/icpverify/services/verification/internal/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clk *clock.Fake) storetest.Engine {
		q := outbox.NewMemQueue(storetest.SealKeys())
		db := memstore.NewDB(q)
		newStore := func(clk clock.Clock, h *domain.Hasher) storetest.Store {
			s := app.New(memstore.New(db, clk, h, domain.DefaultLimits, zap.NewNop(), nil), h, domain.DefaultLimits, zap.NewNop())
			s.LinkBase = storetest.LinkBase
			return s
		}
		return storetest.Engine{Store: newStore(clk, storetest.Hasher(t)), Outbox: q, Replica: newStore}
	})
}
