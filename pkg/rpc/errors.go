// Package rpc is the gRPC edge every service shares: the server with health, reflection, recovery,
// request logging and graceful shutdown; the one place where domain errors become statuses; and the
// client dialer.
package rpc

import (
	"context"
	"errors"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/icpverify/icpverify/pkg/errs"
	batchv1 "github.com/icpverify/icpverify/pkg/gen/icp/batch/v1"
	"github.com/icpverify/icpverify/pkg/pg"
)

// ErrorDomain is the ErrorInfo domain of every error the suite returns.
const ErrorDomain = "icp.verify"

var kindCodes = map[errs.Kind]codes.Code{
	errs.KindInvalidArgument:    codes.InvalidArgument,
	errs.KindNotFound:           codes.NotFound,
	errs.KindFailedPrecondition: codes.FailedPrecondition,
	errs.KindAlreadyExists:      codes.AlreadyExists,
	errs.KindResourceExhausted:  codes.ResourceExhausted,
	errs.KindUnavailable:        codes.Unavailable,
	errs.KindAborted:            codes.Aborted,
	errs.KindUnauthenticated:    codes.Unauthenticated,
	errs.KindPermissionDenied:   codes.PermissionDenied,
}

// ToStatus turns any error a handler returns into the status the caller sees: domain errors keep
// their message and gain an ErrorInfo (and BadRequest or RetryInfo); anything else is logged and
// answered with a generic Internal, so no driver message or personal data leaks.
func ToStatus(log *zap.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	var de *errs.Error
	if errors.As(err, &de) && kindCodes[de.Kind] != codes.OK {
		st := status.New(kindCodes[de.Kind], de.Message)
		details := []protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: de.Reason, Domain: ErrorDomain, Metadata: de.Metadata}}
		if de.Field != "" {
			details = append(details, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
				{Field: de.Field, Description: de.Message, Reason: de.Reason},
			}})
		}
		if de.RetryAfter > 0 {
			details = append(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(de.RetryAfter)})
		}
		if withDetails, derr := st.WithDetails(details...); derr == nil {
			st = withDetails
		}
		return st.Err()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "request cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	if pg.IsUnavailable(err) {
		log.Warn("database unavailable", zap.String("method", method), zap.Error(err))
		return status.Error(codes.Unavailable, "the database is unavailable, retry later")
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.Unavailable {
		return status.Error(codes.Unavailable, "a dependency is unavailable, retry later")
	}
	log.Error("internal error", zap.String("method", method), zap.Error(err))
	return status.Error(codes.Internal, "internal error")
}

// Reason returns the ErrorInfo reason of a status error, or "".
func Reason(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}

// ReasonName is the ErrorInfo reason an ErrorReason value of a contract stands for: its name
// without the ERROR_REASON_ prefix (ERROR_REASON_DEADLINE_NOT_REACHED -> DEADLINE_NOT_REACHED).
func ReasonName(r protoreflect.Enum) string {
	name := string(r.Descriptor().Values().ByNumber(r.Number()).Name())
	return strings.TrimPrefix(name, "ERROR_REASON_")
}

// HasReason tells whether err is a status error with the reason r (see ReasonName).
func HasReason(err error, r protoreflect.Enum) bool {
	return err != nil && Reason(err) == ReasonName(r)
}

// Field returns the first BadRequest field of a status error, or "".
func Field(err error) string {
	st, ok := status.FromError(err)
	if !ok {
		return ""
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

// RetryDelay returns the RetryInfo delay of a status error, or 0.
func RetryDelay(err error) time.Duration {
	st, ok := status.FromError(err)
	if !ok {
		return 0
	}
	for _, det := range st.Details() {
		if ri, ok := det.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

// ItemErrorOf is what a batch answer carries for one item's error: the code, ErrorInfo reason and
// message ToStatus gives the same error from a single call (nil for nil), so a caller treats an item
// exactly as it would the single call's answer (ItemErr).
// An internal error is logged with the server's logger, as ToStatus logs a single call's.
func ItemErrorOf(ctx context.Context, method string, err error) *batchv1.ItemError {
	if err == nil {
		return nil
	}
	log, _ := ctx.Value(logKey{}).(*zap.Logger)
	if log == nil {
		log = zap.NewNop()
	}
	st := status.Convert(ToStatus(log, method, err))
	return &batchv1.ItemError{Code: int32(st.Code()), Reason: Reason(st.Err()), Message: st.Message()}
}

// ItemErr turns a batch answer's item error back into the error the single call would have
// returned: nil for none (or codes.OK), else a status error with an ErrorInfo of its reason (when set).
func ItemErr(e *batchv1.ItemError) error {
	c := codes.Code(e.GetCode())
	if c == codes.OK {
		return nil
	}
	st := status.New(c, e.GetMessage())
	if e.GetReason() != "" {
		if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: e.GetReason(), Domain: ErrorDomain}); err == nil {
			st = d
		}
	}
	return st.Err()
}

// logKey holds, in a handler's context, the server's logger (ItemErrorOf logs with it).
type logKey struct{}
