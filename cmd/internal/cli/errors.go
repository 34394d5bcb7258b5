package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// exitCode maps a gRPC code to the documented exit code.
func exitCode(c codes.Code) int {
	switch c {
	case codes.OK:
		return ExitOK
	case codes.InvalidArgument:
		return ExitInvalidArgument
	case codes.NotFound:
		return ExitNotFound
	case codes.FailedPrecondition, codes.AlreadyExists:
		return ExitFailedPrecondition
	case codes.ResourceExhausted:
		return ExitResourceExhausted
	case codes.Unavailable, codes.DeadlineExceeded:
		return ExitUnavailable
	case codes.Unauthenticated, codes.PermissionDenied:
		return ExitUnauthorized
	}
	return ExitError
}

// describe turns an error into the one line icpctl prints and its exit code. A gRPC error shows its
// code, message, field, reason and retry delay; an unreachable service names its address.
func describe(a *app, err error) (string, int) {
	var ue usageError
	if errors.As(err, &ue) {
		return ue.msg, ExitUsage
	}
	var ce *callError
	if !errors.As(err, &ce) {
		var de *demoError
		if errors.As(err, &de) {
			return de.Error(), ExitError
		}
		return err.Error(), ExitError
	}
	st, ok := status.FromError(ce.err)
	if !ok {
		if errors.Is(ce.err, context.DeadlineExceeded) {
			return fmt.Sprintf("%s at %s did not answer within %s", ce.svc, ce.addr, a.g.timeout), ExitUnavailable
		}
		return err.Error(), ExitError
	}
	if unreachable(ce.err) {
		return fmt.Sprintf("cannot reach the %s service at %s: is the suite running? Start it with 'make run' "+
			"(or point %s / %s at it)", ce.svc, ce.addr, addrFlag[ce.svc], config.EnvName(strings.TrimPrefix(addrFlag[ce.svc], "--"))), ExitUnavailable
	}
	if st.Code() == codes.DeadlineExceeded && rpc.Reason(ce.err) == "" {
		return fmt.Sprintf("%s at %s did not answer within %s (--timeout)", ce.svc, ce.addr, a.g.timeout), ExitUnavailable
	}
	return statusLine(ce.err), exitCode(st.Code())
}

// statusLine renders a status error: "InvalidArgument: not a valid phone number (field
// spec.principal.phone, reason INVALID_PHONE)".
func statusLine(err error) string {
	st, _ := status.FromError(err)
	line := st.Code().String() + ": " + st.Message()
	var extra []string
	if f := rpc.Field(err); f != "" {
		extra = append(extra, "field "+f)
	}
	if r := rpc.Reason(err); r != "" {
		extra = append(extra, "reason "+r)
	}
	if d := rpc.RetryDelay(err); d > 0 {
		extra = append(extra, "retry after "+d.Round(1e9).String())
	}
	if len(extra) > 0 {
		line += " (" + strings.Join(extra, ", ") + ")"
	}
	return line
}

// unreachable tells a connection failure on the client side from an Unavailable answer of a service.
func unreachable(err error) bool {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.Unavailable || rpc.Reason(err) != "" {
		return false
	}
	m := st.Message()
	return strings.Contains(m, "connection error") || strings.Contains(m, "dial") ||
		strings.Contains(m, "connection refused") || strings.Contains(m, "name resolver") ||
		strings.Contains(m, "no such host")
}
