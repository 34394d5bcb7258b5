package memstore_test

import (
	"testing"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/filing/internal/store/memstore"
	"github.com/icpverify/icpverify/services/filing/internal/store/storetest"
)

func TestMemory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clk *clock.Fake, wake func()) storetest.Engine {
		queue := outbox.NewMemQueue(nil)
		return storetest.Engine{Engine: memstore.New(clk, queue, wake), Outbox: queue}
	})
}
