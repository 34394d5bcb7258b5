package pg

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// COMMIT in a failed transaction answers ROLLBACK: a rollback, known.
func TestCheckCommitTag(t *testing.T) {
	if err := checkCommitTag(pgconn.NewCommandTag("COMMIT")); err != nil {
		t.Fatalf("COMMIT: %v", err)
	}
	err := commitFailure(checkCommitTag(pgconn.NewCommandTag("ROLLBACK")))
	if !errors.Is(err, pgx.ErrTxCommitRollback) || errors.Is(err, ErrOutcomeUnknown) {
		t.Fatalf("ROLLBACK: %v, want pgx.ErrTxCommitRollback, outcome known", err)
	}
}

type notSent struct{}

func (notSent) Error() string     { return "conn busy" }
func (notSent) SafeToRetry() bool { return true }

func TestCommitFailureClassification(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		unknown bool
	}{
		{"statement refused", &pgconn.PgError{Code: "23505", Severity: "ERROR", SeverityUnlocalized: "ERROR"}, false},
		{"deadlock", &pgconn.PgError{Code: "40P01", Severity: "ERROR"}, false},
		{"nothing sent", notSent{}, false},
		{"server ended the session", &pgconn.PgError{Code: "57P01", Severity: "FATAL", SeverityUnlocalized: "FATAL"}, true},
		{"connection lost", io.ErrUnexpectedEOF, true},
		{"context ended", context.Canceled, true},
		{"callback refused a result", errors.New("updated 1 orders, want 2"), true},
	} {
		err := commitFailure(tc.err)
		if got := errors.Is(err, ErrOutcomeUnknown); got != tc.unknown || !errors.Is(err, tc.err) {
			t.Errorf("%s: %v, unknown %v; want unknown %v, wrapping the cause", tc.name, err, got, tc.unknown)
		}
	}
}
