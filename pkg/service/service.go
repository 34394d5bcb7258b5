// Package service is the start-up every service shares: the JSON logger, the observer (metrics,
// tracing, admin listener), the gRPC server behind the security edge, the peer dialer, and the
// PostgreSQL pool with readiness and migrations. Each service's server.Run wires only its own parts.
package service

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/observe"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// DatabaseWait is how long a starting service waits for PostgreSQL (containers may start first).
const DatabaseWait = 30 * time.Second

// Base is what every service builds before its own wiring.
type Base struct {
	Log    *zap.Logger
	Obs    *observe.Observer
	Server *rpc.Server
	Peers  *rpc.Dialer
	common config.Common
}

// Start builds the base of the named service from its parsed flags; open lists the service's own open
// defaults (the console provider, a placeholder key) besides those of the security flags, and opts
// add to the server's (rate limits, for instance). Call Close when Run returns.
//
// Defaults fail closed here, for every service at once: on PostgreSQL a service with an open default
// refuses to start, naming each, unless --insecure-dev is given; then, and always on the memory store
// (development), it logs one warning line listing them.
func Start(name string, common config.Common, sec config.Security, open []config.OpenDefault, opts ...rpc.ServerOption) (*Base, error) {
	open = append(sec.OpenDefaults(), open...)
	insecureDev := common.InsecureDev != nil && *common.InsecureDev
	if !common.Memory() && len(open) > 0 && !insecureDev {
		return nil, config.OpenDefaultsError(open)
	}
	log, err := logging.New(name, *common.LogLevel)
	if err != nil {
		return nil, err
	}
	if len(open) > 0 {
		names := make([]string, len(open))
		for i, o := range open {
			names[i] = o.String()
		}
		why := "--insecure-dev"
		if common.Memory() {
			why = "the memory store (development)"
		}
		log.Warn("OPEN DEFAULTS, DEVELOPMENT ONLY: this service runs with what would let a stranger in; allowed by "+why,
			zap.Strings("open_defaults", names))
	}
	obs, err := observe.FromFlags(log, name, common)
	if err != nil {
		return nil, err
	}
	srv, err := rpc.NewSecureServer(log, sec, append([]rpc.ServerOption{rpc.WithObserver(obs)}, opts...)...)
	if err != nil {
		return nil, err
	}
	peers, err := rpc.NewDialer(log, sec)
	if err != nil {
		return nil, err
	}
	peers.Observe(obs)
	if common.Memory() {
		log.Warn("in-memory store: development only, nothing survives a restart")
	}
	return &Base{Log: log, Obs: obs, Server: srv, Peers: peers, common: common}, nil
}

// Close stops the gRPC server (its stream workers run from its construction, so a Run that fails
// before serving would leave them behind; after Serve it does nothing) and flushes the logger.
func (b *Base) Close() {
	b.Server.Stop()
	_ = b.Log.Sync()
}

// Postgres connects to the service's own schema, makes /readyz follow the database and applies the
// migrations. The caller closes the pool.
func (b *Base) Postgres(ctx context.Context, migrations ...pg.Source) (*pgxpool.Pool, error) {
	pool, err := pg.Connect(ctx, b.Log, *b.common.DatabaseURL, *b.common.DatabaseSchema, DatabaseWait)
	if err != nil {
		return nil, err
	}
	b.Obs.Ready("database", pool.Ping)
	if err := pg.Migrate(ctx, pool, migrations...); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	for _, m := range migrations {
		if m.Name == idempotency.Migrations.Name && *b.common.IdempotencyRetention > 0 {
			log := b.Log.Named("idempotency-purge")
			b.Server.Go("idempotency-purge", func(ctx context.Context) error {
				return idempotency.PurgeEvery(ctx, log, pool, *b.common.IdempotencyRetention, time.Hour, time.Now)
			})
		}
	}
	return pool, nil
}

// Serve serves until ctx ends (see rpc.Server.Serve).
func (b *Base) Serve(ctx context.Context) error {
	return b.Server.Serve(ctx, *b.common.GRPCAddr, *b.common.ShutdownTimeout)
}
