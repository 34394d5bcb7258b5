// Package pg connects a service to its own PostgreSQL schema, applies its embedded migrations, runs
// transactions with a bounded retry on serialization failures and deadlocks (one at a time with InTx,
// pipelined in two round trips with Pipeline), and classifies driver errors so store packages can
// turn them into domain errors.
package pg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// GenericPlans, queued right after a batch transaction's BEGIN, plans the rest of the transaction's
// prepared statements generically (plan_cache_mode force_generic_plan, local to the transaction).
// A batch statement takes arrays (unnest($1), = ANY($1)), and a custom plan, which knows an
// array's length, always looks cheaper than the generic one, so PostgreSQL planned those
// statements anew on every execution: 0.30 ms of planning for 0.35 ms of execution in Verify's lock
// statement, a fifth of the database's time under Verify load. They are written for index lookups
// per array element (LATERAL ... OFFSET 0, literal partial-index predicates), which the generic
// plan keeps. A connection's generic plan is made again when autovacuum analyzes its tables, and
// with the connection (pgxpool replaces connections after an hour). Everything else keeps
// PostgreSQL's choice: a claim (LIMIT $2, next_attempt_at <= $1) or a list whose filters are
// optional parameters needs them to be planned well.
//
// Sequential scans are off in these transactions too (enable_seqscan, local): a table analyzed
// while empty (the per-phone failures after a quiet night, any table of a new deployment) looks free
// to scan, and the generic plan made then scanned the whole table on every batch until autovacuum
// analyzed it again (measured: the failures read became Verify's costliest statement, 1.3 ms a
// batch over 8,000 rows). Every batch statement has its index; with none, PostgreSQL still scans.
const GenericPlans = `SELECT set_config('plan_cache_mode', 'force_generic_plan', true), set_config('enable_seqscan', 'off', true)`

var schemaRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Connect opens a pool whose connections use schema as their search_path, creating the schema if
// needed. It waits up to wait for the database to answer, so a container can start before PostgreSQL.
func Connect(ctx context.Context, log *zap.Logger, url, schema string, wait time.Duration) (*pgxpool.Pool, error) {
	if !schemaRE.MatchString(schema) {
		return nil, fmt.Errorf("schema name %q: use lower-case letters, digits and _", schema)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err) // pgx never echoes the password
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	hooks := &failoverHooks{log: log}
	hooks.install(cfg)
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open pool: %w", err)
	}
	hooks.setPool(pool)
	deadline := time.Now().Add(wait)
	for {
		_, err = pool.Exec(ctx, "CREATE SCHEMA IF NOT EXISTS "+schema)
		if err == nil || IsUniqueViolation(err) { // two replicas starting at once race on the catalog
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			pool.Close()
			return nil, fmt.Errorf("database not reachable: %w", err)
		}
		log.Warn("database not reachable yet, retrying", zap.Error(err))
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
	return pool, nil
}

// Source is one set of migrations: an FS holding migrations/NNNN_description.sql, applied in name order.
type Source struct {
	Name string
	FS   fs.FS
}

// Migrate applies every migration not yet applied, each in its own transaction, under an advisory
// lock so that replicas starting together apply each file once.
func Migrate(ctx context.Context, pool *pgxpool.Pool, sources ...Source) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock(hashtext(current_schema()))`); err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock(hashtext(current_schema()))`) //nolint:errcheck
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		source text NOT NULL, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(),
		PRIMARY KEY (source, name))`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	for _, src := range sources {
		names, err := fs.Glob(src.FS, "migrations/*.sql")
		if err != nil {
			return err
		}
		slices.Sort(names)
		for _, name := range names {
			var applied bool
			if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE source=$1 AND name=$2)`,
				src.Name, name).Scan(&applied); err != nil {
				return err
			}
			if applied {
				continue
			}
			sql, err := fs.ReadFile(src.FS, name)
			if err != nil {
				return err
			}
			err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, string(sql)); err != nil {
					return err
				}
				_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (source, name) VALUES ($1, $2)`, src.Name, name)
				return err
			})
			if err != nil {
				return fmt.Errorf("migration %s/%s: %w", src.Name, name, err)
			}
		}
	}
	return nil
}

// MaxTxAttempts bounds the retries of a transaction that hit a serialization failure or deadlock.
const MaxTxAttempts = 5

// InTx runs fn in a READ COMMITTED transaction and commits when fn returns nil. Serialization
// failures (40001) and deadlocks (40P01) are retried (see Retry). A COMMIT whose outcome is unknown
// is an *OutcomeUnknownError, never retried.
func InTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	return Retry(ctx, func() error { return inTx(ctx, pool, fn) })
}

func inTx(ctx context.Context, pool *pgxpool.Pool, fn func(pgx.Tx) error) error {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // after Commit it does nothing
	if err := fn(tx); err != nil {
		return err
	}
	conn := tx.Conn().PgConn()
	startCommit(conn)
	if err := tx.Commit(ctx); err != nil {
		return commitFailure(err)
	}
	return commitReplicated(conn)
}

// Retry runs one whole transaction attempt, again after a serialization failure or deadlock, with a
// short backoff, at most MaxTxAttempts times. For stores that drive a transaction themselves (for
// instance pipelined in batches) the way InTx does.
func Retry(ctx context.Context, attempt func() error) error {
	var err error
	for n := 1; n <= MaxTxAttempts; n++ {
		err = attempt()
		if !IsRetryable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(n*n) * 5 * time.Millisecond):
		}
	}
	return fmt.Errorf("transaction failed after %d attempts: %w", MaxTxAttempts, err)
}

func sqlState(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code
	}
	return ""
}

// IsRetryable tells a serialization failure (40001) or deadlock (40P01): the transaction may be
// retried. Never after an unknown outcome (ErrOutcomeUnknown): the transaction may have committed.
func IsRetryable(err error) bool {
	if errors.Is(err, ErrOutcomeUnknown) {
		return false
	}
	s := sqlState(err)
	return s == "40001" || s == "40P01"
}

// IsUniqueViolation tells a unique-constraint conflict (23505).
func IsUniqueViolation(err error) bool { return sqlState(err) == "23505" }

// IsNoRows tells an empty single-row result.
func IsNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }

// IsUnavailable tells a database that cannot be reached or is going away (a restart, a failover,
// a dropped connection) from a real failure: the caller may retry, so the edge answers Unavailable.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return true
	}
	switch s := sqlState(err); {
	case strings.HasPrefix(s, "08"): // connection exception
		return true
	case s == "57P01", s == "57P02", s == "57P03": // admin shutdown, crash shutdown, cannot connect now
		return true
	case s == stateReadOnly, s == stateTooManyConnection: // a demoted primary, a reconnect storm
		return true
	}
	if errors.Is(err, errSyncRepCancelled) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// Release returns a connection that ran a pipelined transaction (BEGIN and COMMIT sent inside
// pgx batches, so no pgx.Tx tracks it) to the pool outside any transaction: an open or aborted one is
// rolled back, and a connection that cannot roll back is closed (the pool then discards it).
func Release(ctx context.Context, conn *pgxpool.Conn) {
	if !conn.Conn().IsClosed() && conn.Conn().PgConn().TxStatus() != 'I' {
		if _, err := conn.Exec(ctx, `ROLLBACK`); err != nil {
			closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			_ = conn.Conn().Close(closeCtx)
			cancel()
		}
	}
	conn.Release()
}
