package pg

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Pipeline runs one READ COMMITTED transaction as "pipelined reads, decide in Go, pipelined writes,
// commit", in two round trips on one connection of pool (pgx.BeginFunc would take one per
// statement, plus BEGIN and COMMIT):
//
//  1. BEGIN and the statements read queues on b. Their results reach the caller through the queued
//     queries' callbacks (QueuedQuery.Query, QueryRow, Exec), which run as the answers arrive.
//  2. The statements write queues on a new b, decided on those results, and COMMIT.
//
// With read nil, BEGIN, write's statements and COMMIT go in one round trip. Either callback may
// queue GenericPlans first. A statement PostgreSQL refuses makes it skip the rest of its round trip,
// COMMIT too; that error, or one from a callback, is returned and nothing is committed. A failure
// after COMMIT was sent that leaves the outcome unknown is returned as an *OutcomeUnknownError. The
// connection goes back to the pool outside any transaction (Release). Pipeline does not retry: a
// caller wraps it in Retry, which never repeats an unknown outcome.
func Pipeline(ctx context.Context, pool *pgxpool.Pool, read, write func(b *pgx.Batch) error) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer Release(ctx, conn)
	b := &pgx.Batch{}
	b.Queue(`BEGIN`)
	if read != nil {
		if err := read(b); err != nil {
			return err
		}
		// Close reads every result in order, running the callbacks, and returns the first error.
		if err := conn.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		b = &pgx.Batch{}
	}
	if err := write(b); err != nil {
		return err
	}
	committed := false
	b.Queue(`COMMIT`).Exec(func(ct pgconn.CommandTag) error {
		if err := checkCommitTag(ct); err != nil {
			return err
		}
		committed = true
		return nil
	})
	startCommit(conn.Conn().PgConn())
	err = conn.SendBatch(ctx, b).Close()
	if committed {
		// COMMIT's answer came back (only the end of the round trip after it may have failed); it may
		// still be local only.
		return commitReplicated(conn.Conn().PgConn())
	}
	return commitFailure(err)
}

// checkCommitTag tells a COMMIT that PostgreSQL answered ROLLBACK (the transaction had failed).
func checkCommitTag(ct pgconn.CommandTag) error {
	if ct.String() != "COMMIT" {
		return pgx.ErrTxCommitRollback
	}
	return nil
}

// commitFailure classifies an error of the round trip that carried COMMIT, when COMMIT's answer
// did not arrive. Known to be rolled back: COMMIT answered ROLLBACK, nothing was sent
// (pgconn.SafeToRetry), or PostgreSQL refused a statement (an ERROR: the rest is skipped). Anything
// else may have come after the server committed: a lost connection, the context ending (pgx then
// abandons the connection while the server carries on), a FATAL (the server ends the session,
// possibly after committing), or a caller's callback refusing a result of a statement the server
// then followed with COMMIT.
func commitFailure(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case err == nil:
		return errors.New("pipeline: no answer to COMMIT") // cannot happen: COMMIT's callback ran
	case errors.Is(err, pgx.ErrTxCommitRollback), pgconn.SafeToRetry(err):
		return err
	case errors.As(err, &pgErr) && severity(pgErr) == "ERROR":
		return err
	}
	return &OutcomeUnknownError{Err: err}
}

func severity(e *pgconn.PgError) string {
	if e.SeverityUnlocalized != "" {
		return e.SeverityUnlocalized
	}
	return e.Severity
}

// ErrOutcomeUnknown matches (errors.Is) every *OutcomeUnknownError.
var ErrOutcomeUnknown = errors.New("transaction outcome unknown")

// OutcomeUnknownError is a failure of a Pipeline transaction after its COMMIT was sent, without an
// answer that tells whether it committed. Running the transaction again could apply it twice: only a
// caller whose transaction is idempotent may, and Retry never does.
type OutcomeUnknownError struct{ Err error }

func (e *OutcomeUnknownError) Error() string { return "commit outcome unknown: " + e.Err.Error() }

// Unwrap keeps the cause visible: IsUnavailable and context errors classify it as before.
func (e *OutcomeUnknownError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrOutcomeUnknown) hold.
func (e *OutcomeUnknownError) Is(target error) bool { return target == ErrOutcomeUnknown }
