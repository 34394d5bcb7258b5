package rpc

import (
	"errors"
	"fmt"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/errs"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

func TestToStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		err        error
		code       codes.Code
		reason     string
		field      string
		retryAfter time.Duration
		message    string
	}{
		{"invalid names field", errs.Invalid("spec.principal.phone", "INVALID_PHONE", "not a valid phone number"),
			codes.InvalidArgument, "INVALID_PHONE", "spec.principal.phone", 0, "not a valid phone number"},
		{"wrapped not found", fmt.Errorf("load: %w", errs.NotFound("ORDER_NOT_FOUND", "no order ord_1")),
			codes.NotFound, "ORDER_NOT_FOUND", "", 0, "no order ord_1"},
		{"precondition", errs.FailedPrecondition("INVALID_STATE_TRANSITION", "order is CANCELLED"),
			codes.FailedPrecondition, "INVALID_STATE_TRANSITION", "", 0, "order is CANCELLED"},
		{"exhausted with retry", errs.Exhausted("RESEND_TOO_SOON", 42*time.Second, "wait"),
			codes.ResourceExhausted, "RESEND_TOO_SOON", "", 42 * time.Second, "wait"},
		{"driver error hidden", errors.New(`pq: duplicate key value violates "orders_pkey" phone=+8613812345678`),
			codes.Internal, "", "", 0, "internal error"},
		{"domain error without a kind is internal", &errs.Error{Reason: "X", Message: "m"},
			codes.Internal, "", "", 0, "internal error"},
		{"database restarting", fmt.Errorf("lock phone: %w", &pgconn.PgError{Code: "57P01", Message: "terminating connection due to administrator command"}),
			codes.Unavailable, "", "", 0, "the database is unavailable, retry later"},
		{"database unreachable", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED},
			codes.Unavailable, "", "", 0, "the database is unavailable, retry later"},
		{"constraint violation stays internal", &pgconn.PgError{Code: "23505", Message: "duplicate key"},
			codes.Internal, "", "", 0, "internal error"},
		{"downstream unavailable", status.Error(codes.Unavailable, "connection refused 10.0.0.1"),
			codes.Unavailable, "", "", 0, "a dependency is unavailable, retry later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			got := ToStatus(zap.New(core), "/x.v1.S/M", tt.err)
			st := status.Convert(got)
			if st.Code() != tt.code || st.Message() != tt.message {
				t.Fatalf("status = %v %q, want %v %q", st.Code(), st.Message(), tt.code, tt.message)
			}
			if Reason(got) != tt.reason || Field(got) != tt.field || RetryDelay(got) != tt.retryAfter {
				t.Errorf("details = reason %q field %q retry %v", Reason(got), Field(got), RetryDelay(got))
			}
			if tt.code == codes.Internal && logs.Len() != 1 {
				t.Errorf("internal error logged %d times, want once", logs.Len())
			}
		})
	}
}

func TestReasonName(t *testing.T) {
	r := verificationv1.ErrorReason_ERROR_REASON_DEADLINE_NOT_REACHED
	if got := ReasonName(r); got != "DEADLINE_NOT_REACHED" {
		t.Fatalf("ReasonName = %q", got)
	}
	err := ToStatus(zap.NewNop(), "/m", errs.FailedPrecondition("DEADLINE_NOT_REACHED", "not yet"))
	if !HasReason(err, r) || HasReason(err, verificationv1.ErrorReason_ERROR_REASON_SESSION_NOT_FOUND) || HasReason(nil, r) {
		t.Fatalf("HasReason wrong for %v", err)
	}
}
