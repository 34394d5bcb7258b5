// Package gateway is the REST/JSON face of the public services: grpc-gateway's mux over one gRPC
// client connection per service (the mapping is proto/icp/edge/v1/http.yaml, the generated
// handlers are pkg/gen's *.pb.gw.go), with the edge's rules around it: which headers reach the
// services, how big a body may be, how long a call may take, and how errors look.
package gateway

import (
	"context"
	"io"
	"net/http"
	"net/textproto"
	"sync/atomic"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// Options configure the gateway.
type Options struct {
	// Filing and Verification are the connections to the services' public gRPC listeners.
	Filing, Verification grpc.ClientConnInterface
	// MaxBodyBytes bounds a request body; a larger one is answered 413 BODY_TOO_LARGE.
	MaxBodyBytes int64
	// RequestTimeout bounds each call to a service (a shorter grpc-timeout header wins).
	RequestTimeout time.Duration
}

// forwarded are the request headers that reach the services as gRPC metadata, besides
// Authorization, which grpc-gateway always forwards as "authorization" (a bearer API key or JWT).
// Nothing else a client sends is trusted: no Grpc-Metadata-* prefix, no internal headers.
var forwarded = map[string]string{
	"X-Api-Key":    "x-api-key",
	"X-Request-Id": "x-request-id",
}

// incomingHeader is the gateway's header matcher (see forwarded).
func incomingHeader(key string) (string, bool) {
	md, ok := forwarded[textproto.CanonicalMIMEHeaderKey(key)]
	return md, ok
}

// New returns the handler serving every REST route of FilingService and VerificationService.
func New(ctx context.Context, o Options) (http.Handler, error) {
	mux := runtime.NewServeMux(
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		// Response metadata is not forwarded: the services send none a client needs.
		runtime.WithOutgoingHeaderMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithOutgoingTrailerMatcher(func(string) (string, bool) { return "", false }),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
			// Every field in answers, so clients in any language see zeros and empty lists.
			MarshalOptions: protojson.MarshalOptions{EmitUnpopulated: true},
			// A misspelt field is an error (400 MALFORMED_REQUEST), not silently dropped.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}}),
	)
	if err := filingv1.RegisterFilingServiceHandlerClient(ctx, mux, filingv1.NewFilingServiceClient(o.Filing)); err != nil {
		return nil, err
	}
	if err := verificationv1.RegisterVerificationServiceHandlerClient(ctx, mux,
		verificationv1.NewVerificationServiceClient(o.Verification)); err != nil {
		return nil, err
	}
	return limits(mux, o), nil
}

// bodyState records, per request, that the body went past the limit, so the error handler can
// answer 413 instead of the decoder's generic 400.
type bodyState struct {
	limit    int64
	tooLarge atomic.Bool
}

type bodyStateKey struct{}

// limitedBody is http.MaxBytesReader that notes in state when the limit is hit.
type limitedBody struct {
	io.ReadCloser
	state *bodyState
}

func (b limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if _, ok := err.(*http.MaxBytesError); ok {
		b.state.tooLarge.Store(true)
	}
	return n, err
}

// limits wraps the mux with the body limit and the per-call timeout.
func limits(next *runtime.ServeMux, o Options) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if o.MaxBodyBytes > 0 {
			if r.ContentLength > o.MaxBodyBytes {
				_, out := runtime.MarshalerForRequest(next, r)
				runtime.HTTPError(ctx, next, out, w, r, bodyTooLarge(o.MaxBodyBytes))
				return
			}
			state := &bodyState{limit: o.MaxBodyBytes}
			r.Body = limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, o.MaxBodyBytes), state: state}
			ctx = context.WithValue(ctx, bodyStateKey{}, state)
		}
		if o.RequestTimeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, o.RequestTimeout)
			defer cancel()
		}
		// One copy of the request for both (WithContext copies it).
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
