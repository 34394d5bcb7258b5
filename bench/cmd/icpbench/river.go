package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

// River's settings for throughput, as its own benchmark (cmd/river/riverbench) sets them: "these
// numbers have an outsized effect on results ... much better than the client's default values"
// (defaults: FetchCooldown 100 ms, FetchPollInterval 1 s, and no MaxWorkers default).
const (
	riverFetchCooldown     = 2 * time.Millisecond
	riverFetchPollInterval = 20 * time.Millisecond
	// riverSchedulerInterval is River's maintenance.JobSchedulerIntervalDefault: how often the leader
	// moves due `scheduled` jobs to `available`. River does not expose it (Config.schedulerInterval).
	riverSchedulerInterval = 5 * time.Second
)

// closeArgs is the River job of one timer: the submission whose deadline it applies.
type closeArgs struct {
	OrderID    string `json:"order_id"`
	Submission int32  `json:"submission"`
}

func (closeArgs) Kind() string { return "close_if_incomplete" }

// closeWorker makes the sweeper's call (deadline's sweeper.fire) for each job: CloseIfIncomplete
// through a peer connection dialed as the deadline service dials verification.
type closeWorker struct {
	river.WorkerDefaults[closeArgs]
	verification verificationv1.VerificationInternalServiceClient
	starts       *startLog
}

func (w *closeWorker) Work(ctx context.Context, job *river.Job[closeArgs]) error {
	w.starts.record(time.Now(), job.ScheduledAt)
	_, err := w.verification.CloseIfIncomplete(ctx, &verificationv1.CloseIfIncompleteRequest{
		RequestId: fmt.Sprintf("river:close:%s:%d", job.Args.OrderID, job.Args.Submission),
		OrderId:   job.Args.OrderID, Submission: job.Args.Submission,
	})
	if err != nil {
		w.starts.failed()
	}
	return err // River retries a failed job with backoff, as the sweeper re-arms a timer
}

// startLog counts, across the workers, the jobs begun and those begun before their scheduled time.
type startLog struct {
	mu                  sync.Mutex
	started, early, err int
	worstEarly          time.Duration
}

func (l *startLog) record(now, scheduled time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.started++
	if d := scheduled.Sub(now); d > 0 {
		l.early++
		l.worstEarly = max(l.worstEarly, d)
	}
}

func (l *startLog) failed() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.err++
}

func (l *startLog) counts() (started, early, failed int, worst time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.started, l.early, l.err, l.worstEarly
}

// riverVersion is River's module version in this build (bench/go.mod pins it).
func riverVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/riverqueue/river" {
				return m.Version
			}
		}
	}
	return "unknown"
}

// riverRun puts River on the deadline path: o.submitOrders orders of its own submitted as the submit
// phase submits them (their sessions opened by filing's outbox, as for the deadline phase's), River's
// tables in a database of their own on the same server, o.deadlineTotal scheduled jobs of which the
// orders' jobs fall due at one instant T and the rest far in the future, and a River client whose
// worker makes the sweeper's CloseIfIncomplete call. It reports T to the last job completed
// (river_due<N>k_seconds) and to filing holding every order RETURNED.
func riverRun(ctx context.Context, o options, fig *figures, s *suite.Suite, sink *suite.Sink, db *pgxpool.Pool,
	client func(int64) filingv1.FilingServiceClient) (float64, error) {
	orders, _, err := submit(ctx, o, fig, sink, client, riverSet)
	if err != nil {
		return 0, err
	}
	due := len(orders)

	name, url, err := suite.CreateDatabase(ctx, o.adminURL, "icpbench_river")
	if err != nil {
		return 0, err
	}
	if !o.keep {
		defer suite.DropDatabase(context.Background(), o.adminURL, name) //nolint:errcheck
	}
	// River's pool: as many connections as the deadline service's (the workers use it only to
	// complete jobs, which River batches).
	pool, err := pgxpool.New(ctx, suite.WithParams(url, fmt.Sprintf("pool_max_conns=%d", o.clients)))
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return 0, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return 0, fmt.Errorf("river migrate: %w", err)
	}

	conn, err := rpc.Dial(s.Addrs["verification"]) // the deadline service's dialer under --insecure-dev
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	starts := &startLog{}
	workers := river.NewWorkers()
	river.AddWorker(workers, &closeWorker{verification: verificationv1.NewVerificationInternalServiceClient(conn), starts: starts})
	rc, err := river.NewClient(driver, &river.Config{
		FetchCooldown:     riverFetchCooldown,
		FetchPollInterval: riverFetchPollInterval,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: o.riverWorkers}},
		Workers:           workers,
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return 0, err
	}
	fig.note(fmt.Sprintf("river %s: MaxWorkers=%d FetchCooldown=%s FetchPollInterval=%s scheduler interval=%s (fixed in River), pool_max_conns=%d, database %s on the same server",
		riverVersion(), o.riverWorkers, riverFetchCooldown, riverFetchPollInterval, riverSchedulerInterval, o.clients, "icpbench_river_*"))
	fig.add("river_max_workers", float64(o.riverWorkers), "workers")
	fig.add("river_fetch_cooldown_ms", ms(riverFetchCooldown), "ms")
	fig.add("river_fetch_poll_interval_ms", ms(riverFetchPollInterval), "ms")
	fig.add("river_scheduler_interval_seconds", riverSchedulerInterval.Seconds(), "s")

	// The far-future jobs first (COPY, in batches so the parameters do not all sit in memory).
	far := o.deadlineTotal - due
	logf("InsertManyFast %d far-future scheduled River jobs", far)
	now := time.Now().UTC()
	start := time.Now()
	const chunk = 20000
	params := make([]river.InsertManyParams, 0, chunk)
	for i := 0; i < far; i += chunk {
		params = params[:0]
		for j := i; j < min(i+chunk, far); j++ {
			at := now.Add(48*time.Hour + time.Duration(j%(30*24*3600))*time.Second)
			params = append(params, river.InsertManyParams{Args: closeArgs{OrderID: fmt.Sprintf("ord_riverfar_%07d", j), Submission: 1},
				InsertOpts: &river.InsertOpts{ScheduledAt: at}})
		}
		if _, err := rc.InsertManyFast(ctx, params); err != nil {
			return 0, fmt.Errorf("river insert: %w", err)
		}
	}
	if far > 0 {
		fig.add("river_insert_jobs_per_s", float64(far)/time.Since(start).Seconds(), "jobs/s")
	}
	// The client starts before the due jobs go in: its leader election (which runs the scheduler)
	// is settled by T.
	if err := rc.Start(ctx); err != nil {
		return 0, err
	}
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = rc.Stop(stopCtx)
	}()

	// T: one instant for all due jobs, far enough ahead for the insert, ANALYZE and moves below (13 s
	// on a loaded 2-core machine).
	T := time.Now().Add(30 * time.Second).UTC().Truncate(time.Millisecond)
	params = params[:0]
	for _, id := range orders {
		params = append(params, river.InsertManyParams{Args: closeArgs{OrderID: id, Submission: 1}, InsertOpts: &river.InsertOpts{ScheduledAt: T}})
	}
	if _, err := rc.InsertManyFast(ctx, params); err != nil {
		return 0, fmt.Errorf("river insert: %w", err)
	}
	if _, err := pool.Exec(ctx, `ANALYZE river_job`); err != nil {
		return 0, err
	}
	var scheduled int64
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'scheduled'`).Scan(&scheduled); err != nil {
		return 0, err
	}
	fig.add("river_pending_jobs", float64(scheduled), "jobs")
	// The sessions' and orders' deadlines move to T as the deadline phase moves them; the deadline
	// service's own timers of these orders stay where filing put them, so only River fires them.
	if err := moveDeadlines(ctx, db, orders, T, false); err != nil {
		return 0, err
	}
	if time.Now().After(T.Add(-2 * time.Second)) {
		return 0, fmt.Errorf("river set-up took past T; raise the margin")
	}
	logf("waiting for T = %s; %d River jobs fall due then", T.Format(time.RFC3339Nano), due)
	for time.Now().Before(T) {
		time.Sleep(10 * time.Millisecond)
	}
	cpu0 := cpuOf()
	profile(o, "river", 10*time.Second)
	for {
		var k int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE state = 'completed'`).Scan(&k); err != nil {
			return 0, err
		}
		if k >= due {
			break
		}
		if time.Now().After(T.Add(5 * time.Minute)) {
			return 0, fmt.Errorf("river: only %d of %d jobs completed 5 minutes after T", k, due)
		}
		time.Sleep(50 * time.Millisecond)
	}
	observed := time.Since(T)
	cpuCores(fig, "river", cpu0, cpuOf(), observed)
	var last time.Time
	var completed int
	if err := pool.QueryRow(ctx, `SELECT max(finalized_at), count(*) FROM river_job WHERE state = 'completed' AND scheduled_at = $1`, T).
		Scan(&last, &completed); err != nil {
		return 0, err
	}
	if completed != due {
		return 0, fmt.Errorf("river: %d completed jobs were due at T, want %d (a far-future job ran?)", completed, due)
	}
	dueSeconds := last.Sub(T).Seconds()
	_, early, failed, worst := starts.counts()
	fig.add(fmt.Sprintf("river_due%dk_seconds", due/1000), dueSeconds, "s")
	fig.add("river_due_observed_seconds", observed.Seconds(), "s")
	fig.add("river_early_starts", float64(early), "count")
	if early > 0 {
		logf("river: %d jobs began before their scheduled time, the earliest %s early", early, worst)
	}
	fig.add("river_failed_attempts", float64(failed), "count")

	// The same end as deadline_due<N>k_seconds: filing holds every order RETURNED (verification's
	// outbox delivering ReturnOrder after each close).
	returned, err := waitReturned(ctx, db, orders, T)
	if err != nil {
		return 0, err
	}
	fig.add("river_returned_seconds", returned.Seconds(), "s")
	return dueSeconds, nil
}

// moveDeadlines moves the orders' submission-1 deadlines to T in verification and filing, and, with
// timers, the deadline service's timers too; each statement must move every order.
func moveDeadlines(ctx context.Context, db *pgxpool.Pool, orders []string, T time.Time, timers bool) error {
	qs := []string{
		`UPDATE verification.sessions SET deadline_at = $2 WHERE order_id = ANY($1) AND submission = 1`,
		`UPDATE filing.orders SET deadline_at = $2 WHERE order_id = ANY($1)`,
	}
	if timers {
		qs = append(qs, `UPDATE deadline.deadlines SET due_at = $2, next_attempt_at = $2 WHERE order_id = ANY($1) AND submission = 1 AND state = 'PENDING'`)
	}
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	for _, q := range qs {
		tag, err := tx.Exec(ctx, q, orders, T)
		if err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		if tag.RowsAffected() != int64(len(orders)) {
			return fmt.Errorf("%s moved %d rows, want %d", q, tag.RowsAffected(), len(orders))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	return analyze(ctx, db)
}

// waitReturned waits until filing has every one of orders RETURNED and returns T to the last such
// transition; a RETURNED before T is an error (a deadline applied early).
func waitReturned(ctx context.Context, db *pgxpool.Pool, orders []string, T time.Time) (time.Duration, error) {
	for {
		var k int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM filing.orders WHERE order_id = ANY($1) AND state = 'RETURNED'`, orders).Scan(&k); err != nil {
			return 0, err
		}
		if k >= len(orders) {
			break
		}
		if time.Now().After(T.Add(5 * time.Minute)) {
			return 0, fmt.Errorf("only %d of %d returned 5 minutes after T", k, len(orders))
		}
		time.Sleep(100 * time.Millisecond)
	}
	var last time.Time
	var early int
	if err := db.QueryRow(ctx, `SELECT max(at), count(*) FILTER (WHERE at < $2) FROM filing.order_history
		WHERE order_id = ANY($1) AND to_state = 'RETURNED'`, orders, T).Scan(&last, &early); err != nil {
		return 0, err
	}
	if early > 0 {
		return 0, fmt.Errorf("%s of %d orders RETURNED before T", strconv.Itoa(early), len(orders))
	}
	return last.Sub(T), nil
}
