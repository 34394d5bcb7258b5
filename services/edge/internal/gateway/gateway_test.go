package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
)

// fakeFiling answers from the order id: "missing" NotFound, "locked" FailedPrecondition, anything
// else the order; CreateOrder refuses an empty subject name with a field. It keeps the last
// incoming metadata and request.
type fakeFiling struct {
	filingv1.UnimplementedFilingServiceServer
	mu   sync.Mutex
	md   metadata.MD
	last any
}

func (f *fakeFiling) seen(ctx context.Context, req any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.md, _ = metadata.FromIncomingContext(ctx)
	f.last = req
}

func (f *fakeFiling) CreateOrder(ctx context.Context, req *filingv1.CreateOrderRequest) (*filingv1.CreateOrderResponse, error) {
	f.seen(ctx, req)
	if req.GetSpec().GetSubjectName() == "" {
		return nil, errs.Invalid("spec.subject_name", "MISSING_SUBJECT_NAME", "spec.subject_name is required")
	}
	return &filingv1.CreateOrderResponse{Order: &filingv1.Order{OrderId: "ord_1"}}, nil
}

func (f *fakeFiling) order(ctx context.Context, req any, id string) (*filingv1.Order, error) {
	f.seen(ctx, req)
	switch id {
	case "missing":
		return nil, errs.NotFound("ORDER_NOT_FOUND", "order %s not found", id)
	case "locked":
		return nil, errs.FailedPrecondition("ORDER_NOT_EDITABLE", "the order cannot change now")
	}
	return &filingv1.Order{OrderId: id}, nil
}

func (f *fakeFiling) GetOrder(ctx context.Context, req *filingv1.GetOrderRequest) (*filingv1.GetOrderResponse, error) {
	o, err := f.order(ctx, req, req.GetOrderId())
	return &filingv1.GetOrderResponse{Order: o}, err
}

func (f *fakeFiling) UpdateOrder(ctx context.Context, req *filingv1.UpdateOrderRequest) (*filingv1.UpdateOrderResponse, error) {
	o, err := f.order(ctx, req, req.GetOrderId())
	return &filingv1.UpdateOrderResponse{Order: o}, err
}

func (f *fakeFiling) SubmitOrder(ctx context.Context, req *filingv1.SubmitOrderRequest) (*filingv1.SubmitOrderResponse, error) {
	o, err := f.order(ctx, req, req.GetOrderId())
	return &filingv1.SubmitOrderResponse{Order: o}, err
}

func (f *fakeFiling) CancelOrder(ctx context.Context, req *filingv1.CancelOrderRequest) (*filingv1.CancelOrderResponse, error) {
	o, err := f.order(ctx, req, req.GetOrderId())
	return &filingv1.CancelOrderResponse{Order: o}, err
}

func (f *fakeFiling) ListOrders(ctx context.Context, req *filingv1.ListOrdersRequest) (*filingv1.ListOrdersResponse, error) {
	f.seen(ctx, req)
	return &filingv1.ListOrdersResponse{NextPageToken: "next"}, nil
}

// fakeVerification: Verify with code "000000" is a mismatch, "999999" rate limited; ResendCode
// without a key Unauthenticated, with key "other" PermissionDenied.
type fakeVerification struct {
	verificationv1.UnimplementedVerificationServiceServer
	filing *fakeFiling
}

func (v *fakeVerification) Verify(ctx context.Context, req *verificationv1.VerifyRequest) (*verificationv1.VerifyResponse, error) {
	v.filing.seen(ctx, req)
	switch req.GetCode() {
	case "000000":
		return nil, errs.NotFound("VERIFICATION_NOT_MATCHED", "the code, phone and ID do not match")
	case "999999":
		return nil, errs.Exhausted("RATE_LIMITED", 1500*time.Millisecond, "too many requests")
	}
	return &verificationv1.VerifyResponse{Result: verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED, OrderId: "ord_1"}, nil
}

func (v *fakeVerification) ResendCode(ctx context.Context, req *verificationv1.ResendCodeRequest) (*verificationv1.ResendCodeResponse, error) {
	v.filing.seen(ctx, req)
	md, _ := metadata.FromIncomingContext(ctx)
	switch k := md.Get("x-api-key"); {
	case len(k) == 0:
		return nil, errs.Unauthenticated("CREDENTIAL_MISSING", "this RPC needs a credential")
	case k[0] == "other":
		return nil, errs.PermissionDenied("WRONG_TENANT", "not yours")
	}
	return &verificationv1.ResendCodeResponse{Resend: &verificationv1.Resend{OrderId: "ord_1", ResendsLeft: 1}}, nil
}

func (v *fakeVerification) GetVerificationStatus(ctx context.Context, req *verificationv1.GetVerificationStatusRequest) (*verificationv1.GetVerificationStatusResponse, error) {
	v.filing.seen(ctx, req)
	return &verificationv1.GetVerificationStatusResponse{Status: &verificationv1.VerificationStatus{OrderId: req.GetOrderId(), Submission: 2}}, nil
}

func (v *fakeVerification) GetLink(ctx context.Context, req *verificationv1.GetLinkRequest) (*verificationv1.GetLinkResponse, error) {
	v.filing.seen(ctx, req)
	return &verificationv1.GetLinkResponse{PhoneMasked: "138****5678", State: verificationv1.ChallengeState_CHALLENGE_STATE_PENDING}, nil
}

type fixture struct {
	url    string
	filing *fakeFiling
}

// serve runs both fakes behind the real pkg/rpc server stack (its error mapping makes the details)
// and the gateway in front of them; verification may be a connection to nothing.
func serve(t *testing.T, verification grpc.ClientConnInterface) fixture {
	t.Helper()
	f := &fakeFiling{}
	conn := rpctest.Serve(t, func(s *rpc.Server) {
		filingv1.RegisterFilingServiceServer(s.Public(), f)
		verificationv1.RegisterVerificationServiceServer(s.Public(), &fakeVerification{filing: f})
	})
	if verification == nil {
		verification = conn
	}
	h, err := New(t.Context(), Options{Filing: conn, Verification: verification, MaxBodyBytes: 1024, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return fixture{url: srv.URL, filing: f}
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (fx fixture) do(t *testing.T, method, path, body string, headers ...string) answer {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, fx.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) answer {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	if err := json.Unmarshal(raw, &a.body); err != nil {
		t.Fatalf("%s %s: body is not JSON: %v: %q", req.Method, req.URL.Path, err, raw)
	}
	return a
}

// detail returns the first detail of the error body with the @type's suffix typ.
func (a answer) detail(typ string) map[string]any {
	details, _ := a.body["details"].([]any)
	for _, d := range details {
		m, _ := d.(map[string]any)
		if s, _ := m["@type"].(string); strings.HasSuffix(s, "/google.rpc."+typ) {
			return m
		}
	}
	return nil
}

func (a answer) reason() string {
	r, _ := a.detail("ErrorInfo")["reason"].(string)
	return r
}
