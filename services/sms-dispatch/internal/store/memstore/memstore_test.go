package memstore_test

import (
	"testing"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/memstore"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/storetest"
)

// TestMemory runs the engine suite on the in-memory engine.
func TestMemory(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(_ *testing.T, clk *clock.Fake) storetest.Engine {
		s := memstore.New(clk)
		return storetest.Engine{Store: s, Outbox: s.Outbox()}
	})
}
