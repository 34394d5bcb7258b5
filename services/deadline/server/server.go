// Package server wires the deadline service: flags, logger, storage (PostgreSQL, or memory for the
// one-process development server), the gRPC API and the sweeper.
// Run is exported so a one-process dev server can start every service side by side.
package server

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/config"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/service"
	"github.com/icpverify/icpverify/services/deadline/internal/grpcapi"
	"github.com/icpverify/icpverify/services/deadline/internal/store"
	"github.com/icpverify/icpverify/services/deadline/internal/store/memstore"
	"github.com/icpverify/icpverify/services/deadline/internal/sweeper"
)

// engine is what the service needs from storage: the handlers' and the sweeper's interfaces, which
// the PostgreSQL store and the memory engine both implement.
type engine interface {
	grpcapi.Store
	sweeper.Store
	sweeper.Counter
}

// Run parses args, serves until ctx ends, then shuts down gracefully.
func Run(ctx context.Context, args []string) error {
	f := config.NewFlags("deadline")
	common := config.RegisterCommon(f, config.DefaultDeadlineAddr, "deadline")
	sec := config.RegisterSecurity(f, config.Peers)
	verificationAddr := f.String("verification-addr", config.DefaultVerificationAddr, "address of the verification service (CloseIfIncomplete)")
	sweepInterval := f.Duration("sweep-interval", 500*time.Millisecond, "idle wait between sweeper claims (shorter when a timer falls due sooner)")
	sweepBatch := f.Int("sweep-batch", 100, "how many due timers one sweeper claim takes")
	lease := f.Duration("lease", 30*time.Second, "how long a claimed timer is hidden from other sweepers; must exceed the close call's timeout")
	fireConcurrency := f.Int("fire-concurrency", 16, "how many CloseIfIncomplete calls run at once")
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(common.Check(), sec.Check()); err != nil {
		return err
	}
	switch {
	case *sweepInterval <= 0:
		return errors.New("--sweep-interval must be positive")
	case *sweepBatch <= 0:
		return errors.New("--sweep-batch must be positive")
	case *lease < time.Second:
		return errors.New("--lease must be at least 1s")
	case *fireConcurrency <= 0:
		return errors.New("--fire-concurrency must be positive")
	}

	base, err := service.Start("deadline", common, sec, nil)
	if err != nil {
		return err
	}
	defer base.Close()
	log, obs, srv, peers := base.Log, base.Obs, base.Server, base.Peers

	clk := clock.Real{}
	var st engine
	if common.Memory() {
		st = memstore.New(clk)
	} else {
		pool, err := base.Postgres(ctx, store.Migrations, idempotency.Migrations)
		if err != nil {
			return err
		}
		defer pool.Close()
		st = store.New(pool, clk)
	}

	conn, err := peers.Dial(*verificationAddr)
	if err != nil {
		return err
	}
	defer conn.Close()

	sw := &sweeper.Sweeper{
		Store:        st,
		Verification: verificationv1.NewVerificationInternalServiceClient(conn),
		Clock:        clk,
		Log:          log.Named("sweeper"),
		Interval:     *sweepInterval,
		Batch:        *sweepBatch,
		Concurrency:  *fireConcurrency,
		Lease:        *lease,
		Metrics:      sweeper.NewMetrics(obs, st, clk.Now, *lease),
	}

	grpcapi.Register(srv.Public(), srv.Internal(), grpcapi.New(st))
	srv.Go("sweeper", sw.Run)
	log.Info("deadline starting", zap.String("addr", *common.GRPCAddr), zap.String("verification_addr", *verificationAddr),
		zap.Duration("sweep_interval", *sweepInterval), zap.Int("sweep_batch", *sweepBatch), zap.Duration("lease", *lease),
		zap.Int("fire_concurrency", *fireConcurrency), zap.String("store", *common.Store))
	return base.Serve(ctx)
}
