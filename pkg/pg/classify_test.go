package pg_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/icpverify/icpverify/pkg/pg"
)

// What a failover throws at a service is Unavailable (the client retries with its request id); what a
// request did wrong, or a conflict, is not.
func TestIsUnavailable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "25006"}, true}, // read_only_sql_transaction: a demoted primary
		{&pgconn.PgError{Code: "53300"}, true}, // too_many_connections: the reconnect storm
		{&pgconn.PgError{Code: "57P01"}, true}, // admin_shutdown
		{&pgconn.PgError{Code: "57P03"}, true}, // cannot_connect_now: starting or promoting
		{&pgconn.PgError{Code: "08006"}, true}, // connection_failure
		{fmt.Errorf("send batch: %w", io.ErrUnexpectedEOF), true},
		{&pg.OutcomeUnknownError{Err: io.EOF}, true},
		{&pgconn.PgError{Code: "23505"}, false}, // unique_violation
		{&pgconn.PgError{Code: "40001"}, false}, // serialization_failure: retried inside
		{&pgconn.PgError{Code: "22P02"}, false}, // invalid_text_representation
		{context.Canceled, false},
		{errors.New("no"), false},
		{nil, false},
	} {
		if got := pg.IsUnavailable(tc.err); got != tc.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
