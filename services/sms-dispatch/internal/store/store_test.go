package store_test

import (
	"testing"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/storetest"
)

var _ storetest.Store = (*store.Store)(nil)

// TestPostgres runs the engine suite on PostgreSQL, one schema per test.
func TestPostgres(t *testing.T) {
	storetest.Run(t, func(t *testing.T, _ *clock.Fake) storetest.Engine {
		return storetest.Engine{Store: store.New(pgtest.NewSchema(t, "sms", store.Migrations))}
	})
}
