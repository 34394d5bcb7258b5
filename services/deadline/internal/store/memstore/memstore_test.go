package memstore_test

import (
	"testing"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/services/deadline/internal/grpcapi"
	"github.com/icpverify/icpverify/services/deadline/internal/store/memstore"
	"github.com/icpverify/icpverify/services/deadline/internal/store/storetest"
	"github.com/icpverify/icpverify/services/deadline/internal/sweeper"
)

var (
	_ grpcapi.Store   = (*memstore.Store)(nil)
	_ sweeper.Store   = (*memstore.Store)(nil)
	_ storetest.Store = (*memstore.Store)(nil)
)

// TestStore runs the engine suite in memory; a second replica shares the one store.
func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(_ *testing.T, clk *clock.Fake) storetest.Engine {
		s := memstore.New(clk)
		return storetest.Engine{Store: s, Replica: s}
	})
}
