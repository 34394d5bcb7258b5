package memstore_test

import (
	"sync/atomic"
	"testing"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/filing/internal/grpcapi"
	"github.com/icpverify/icpverify/services/filing/internal/store"
	"github.com/icpverify/icpverify/services/filing/internal/store/memstore"
	"github.com/icpverify/icpverify/services/filing/internal/store/storetest"
)

var _ grpcapi.Store = (*memstore.Store)(nil)

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, clk *clock.Fake) storetest.Engine {
		queue := outbox.NewMemQueue()
		st := memstore.New(clk, store.Config{}, queue)
		var woken atomic.Int64
		st.OnEnqueue = func() { woken.Add(1) }
		return storetest.Engine{Store: st, Outbox: queue, Woken: func() int { return int(woken.Load()) }}
	})
}
