package memstore_test

import (
	"testing"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/services/deadline/internal/store/memstore"
	"github.com/icpverify/icpverify/services/deadline/internal/store/storetest"
)

// TestMemory runs the engine suite on the in-memory engine; a second replica shares the one store.
func TestMemory(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(_ *testing.T, clk *clock.Fake) storetest.Engine {
		s := memstore.New(clk)
		return storetest.Engine{Store: s, Replica: s}
	})
}
