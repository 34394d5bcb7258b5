package gateway

import (
	"context"
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"

	edgev1 "github.com/icpverify/icpverify/pkg/gen/icp/edge/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// unavailableRetry is the RetryInfo the edge adds when a service cannot be reached.
const unavailableRetry = time.Second

// errorHandler answers every failed call with google.rpc.Status JSON and the HTTP status of
// grpc-gateway's standard mapping (runtime.HTTPStatusFromCode: InvalidArgument, FailedPrecondition
// and OutOfRange 400, Unauthenticated 401, PermissionDenied 403, NotFound 404, AlreadyExists and
// Aborted 409, ResourceExhausted 429, Unavailable 503, ...). The services' details (ErrorInfo,
// BadRequest, RetryInfo) pass as they are; errors the gateway raised itself get the edge's
// ErrorInfo; a RetryInfo becomes a Retry-After header too.
func errorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	err = classify(r, err)
	var httpErr *runtime.HTTPStatusError
	st := status.Convert(err)
	if errors.As(err, &httpErr) {
		st = status.Convert(httpErr.Err)
	}
	if d := retryAfter(st); d != "" {
		w.Header().Set("Retry-After", d)
	}
	runtime.DefaultHTTPErrorHandler(ctx, mux, m, w, r, err)
}

// routingErrorHandler answers a path without a route 404 and a path with another method 405,
// both with the edge's ErrorInfo.
func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	var err error
	switch httpStatus {
	case http.StatusNotFound:
		err = edgeError(codes.NotFound, edgev1.ErrorReason_ERROR_REASON_ROUTE_NOT_FOUND, "no REST route for "+r.URL.Path+" (see /openapi.json)")
	case http.StatusMethodNotAllowed:
		err = &runtime.HTTPStatusError{HTTPStatus: http.StatusMethodNotAllowed,
			Err: edgeError(codes.Unimplemented, edgev1.ErrorReason_ERROR_REASON_METHOD_NOT_ALLOWED, r.Method+" is not allowed on "+r.URL.Path)}
	default:
		err = edgeError(codes.InvalidArgument, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST, http.StatusText(httpStatus))
	}
	errorHandler(ctx, mux, m, w, r, err)
}

// classify gives the errors the gateway raised itself (they carry no ErrorInfo: a body that does
// not decode, a parameter that does not parse, a service that cannot be reached) the edge's
// reason; the services' own errors pass unchanged.
func classify(r *http.Request, err error) error {
	if state, ok := r.Context().Value(bodyStateKey{}).(*bodyState); ok && state.tooLarge.Load() {
		return bodyTooLarge(state.limit)
	}
	var httpErr *runtime.HTTPStatusError
	if errors.As(err, &httpErr) {
		return err
	}
	st := status.Convert(err)
	if rpc.Reason(err) != "" {
		return err
	}
	switch st.Code() {
	case codes.InvalidArgument:
		return edgeError(codes.InvalidArgument, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST,
			"the request does not parse: "+st.Message())
	case codes.Unavailable:
		return edgeError(codes.Unavailable, edgev1.ErrorReason_ERROR_REASON_SERVICE_UNAVAILABLE,
			st.Message(), &errdetails.RetryInfo{RetryDelay: durationpb.New(unavailableRetry)})
	}
	return err
}

// bodyTooLarge is the 413 answer to a body over limit bytes.
func bodyTooLarge(limit int64) error {
	return &runtime.HTTPStatusError{HTTPStatus: http.StatusRequestEntityTooLarge,
		Err: edgeError(codes.InvalidArgument, edgev1.ErrorReason_ERROR_REASON_BODY_TOO_LARGE,
			"the request body is larger than "+strconv.FormatInt(limit, 10)+" bytes")}
}

// edgeError is a status with the edge's ErrorInfo (domain rpc.ErrorDomain, as the services').
func edgeError(code codes.Code, reason edgev1.ErrorReason, msg string, more ...protoadapt.MessageV1) error {
	st := status.New(code, msg)
	details := append([]protoadapt.MessageV1{&errdetails.ErrorInfo{Reason: rpc.ReasonName(reason), Domain: rpc.ErrorDomain}}, more...)
	if withDetails, err := st.WithDetails(details...); err == nil {
		st = withDetails
	}
	return st.Err()
}

// retryAfter is the Retry-After value (whole seconds, rounded up) of a status's RetryInfo, or "".
func retryAfter(st *status.Status) string {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			secs := math.Ceil(ri.GetRetryDelay().AsDuration().Seconds())
			if secs < 1 {
				secs = 1
			}
			return strconv.FormatInt(int64(secs), 10)
		}
	}
	return ""
}
