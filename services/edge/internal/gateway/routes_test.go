package gateway

import (
	"net/http"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	edgev1 "github.com/icpverify/icpverify/pkg/gen/icp/edge/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
)

// Every public RPC answers on its REST route, with path, query and body fields in the request the
// service gets.
func TestRoutes(t *testing.T) {
	fx := serve(t, nil)
	cases := []struct {
		method, path, body string
		want               proto.Message
	}{
		{"POST", "/v1/orders", `{"requestId":"r1","spec":{"subjectName":"ACME"}}`,
			&filingv1.CreateOrderRequest{RequestId: "r1", Spec: &filingv1.OrderSpec{SubjectName: "ACME"}}},
		{"PATCH", "/v1/orders/ord_7", `{"request_id":"r2","spec":{"subject_name":"B"}}`,
			&filingv1.UpdateOrderRequest{RequestId: "r2", OrderId: "ord_7", Spec: &filingv1.OrderSpec{SubjectName: "B"}}},
		{"POST", "/v1/orders/ord_7:submit", `{"requestId":"r3"}`, &filingv1.SubmitOrderRequest{RequestId: "r3", OrderId: "ord_7"}},
		{"GET", "/v1/orders/ord_7", "", &filingv1.GetOrderRequest{OrderId: "ord_7"}},
		{"GET", "/v1/orders?pageSize=5&pageToken=t&state=ORDER_STATE_DRAFT", "",
			&filingv1.ListOrdersRequest{PageSize: 5, PageToken: "t", State: filingv1.OrderState_ORDER_STATE_DRAFT}},
		{"POST", "/v1/orders/ord_7:cancel", `{"requestId":"r4","reason":"dup"}`,
			&filingv1.CancelOrderRequest{RequestId: "r4", OrderId: "ord_7", Reason: "dup"}},
		{"POST", "/v1/verify", `{"phone":"+8613800000000","code":"123456","idTail":"12345X"}`,
			&verificationv1.VerifyRequest{Phone: "+8613800000000", Code: "123456", IdTail: "12345X"}},
		{"POST", "/v1/resend", `{"requestId":"r5","phone":"+8613800000000","idTail":"12345X"}`,
			&verificationv1.ResendCodeRequest{RequestId: "r5", Phone: "+8613800000000", IdTail: "12345X"}},
		{"GET", "/v1/orders/ord_7/verification", "", &verificationv1.GetVerificationStatusRequest{OrderId: "ord_7"}},
		{"GET", "/v1/links/Abcdefghijklmnopqrstu0", "", &verificationv1.GetLinkRequest{Token: "Abcdefghijklmnopqrstu0"}},
		{"POST", "/v1/verify", `{"code":"123456","idTail":"12345X","linkToken":"Abcdefghijklmnopqrstu0"}`,
			&verificationv1.VerifyRequest{Code: "123456", IdTail: "12345X", LinkToken: "Abcdefghijklmnopqrstu0"}},
	}
	for _, c := range cases {
		a := fx.do(t, c.method, c.path, c.body, "X-Api-Key", "k")
		if a.status != http.StatusOK {
			t.Errorf("%s %s: %d %s", c.method, c.path, a.status, a.raw)
			continue
		}
		fx.filing.mu.Lock()
		got, _ := fx.filing.last.(proto.Message)
		fx.filing.mu.Unlock()
		if !proto.Equal(got, c.want) {
			t.Errorf("%s %s: the service got %v, want %v", c.method, c.path, got, c.want)
		}
	}
	// Answers carry every field (zeros too), in lowerCamelCase.
	a := fx.do(t, "GET", "/v1/orders/ord_7/verification", "")
	status, _ := a.body["status"].(map[string]any)
	if status["orderId"] != "ord_7" || status["submission"] != float64(2) || status["verifiers"] == nil {
		t.Errorf("status body %s", a.raw)
	}
}

// The caller's credential reaches the service as it was sent; other headers do not.
func TestHeaderPassThrough(t *testing.T) {
	fx := serve(t, nil)
	a := fx.do(t, "GET", "/v1/orders/ord_7", "", "Authorization", "Bearer jwt.token.here", "X-Api-Key", "key-a",
		"X-Request-Id", "req-1", "Grpc-Metadata-Internal-Caller", "deadline", "X-Internal", "yes", "Cookie", "c=1")
	if a.status != http.StatusOK {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	fx.filing.mu.Lock()
	md := fx.filing.md
	fx.filing.mu.Unlock()
	for key, want := range map[string]string{"authorization": "Bearer jwt.token.here", "x-api-key": "key-a", "x-request-id": "req-1"} {
		if got := md.Get(key); len(got) != 1 || got[0] != want {
			t.Errorf("metadata %s = %q, want exactly [%q]", key, got, want)
		}
	}
	for _, key := range []string{"internal-caller", "grpc-metadata-internal-caller", "x-internal", "cookie"} {
		if got := md.Get(key); len(got) != 0 {
			t.Errorf("metadata %s = %q, want none", key, got)
		}
	}
}

// Errors are google.rpc.Status JSON with the services' details intact and the standard HTTP status.
func TestServiceErrors(t *testing.T) {
	fx := serve(t, nil)
	cases := []struct {
		name, method, path, body string
		headers                  []string
		status, code             int
		reason                   string
	}{
		{"not found", "GET", "/v1/orders/missing", "", nil, 404, 5, "ORDER_NOT_FOUND"},
		{"failed precondition", "POST", "/v1/orders/locked:submit", `{}`, nil, 400, 9, "ORDER_NOT_EDITABLE"},
		{"mismatch", "POST", "/v1/verify", `{"code":"000000"}`, nil, 404, 5, "VERIFICATION_NOT_MATCHED"},
		{"unauthenticated", "POST", "/v1/resend", `{}`, nil, 401, 16, "CREDENTIAL_MISSING"},
		{"permission denied", "POST", "/v1/resend", `{}`, []string{"X-Api-Key", "other"}, 403, 7, "WRONG_TENANT"},
		{"rate limited", "POST", "/v1/verify", `{"code":"999999"}`, nil, 429, 8, "RATE_LIMITED"},
	}
	for _, c := range cases {
		a := fx.do(t, c.method, c.path, c.body, c.headers...)
		if a.status != c.status || a.body["code"] != float64(c.code) || a.reason() != c.reason {
			t.Errorf("%s: %d code %v reason %q, want %d code %d reason %q: %s", c.name, a.status, a.body["code"], a.reason(),
				c.status, c.code, c.reason, a.raw)
		}
		if a.detail("ErrorInfo")["domain"] != rpc.ErrorDomain {
			t.Errorf("%s: ErrorInfo domain %v", c.name, a.detail("ErrorInfo")["domain"])
		}
	}

	a := fx.do(t, "POST", "/v1/orders", `{"spec":{}}`)
	br := a.detail("BadRequest")
	violations, _ := br["fieldViolations"].([]any)
	if a.status != 400 || a.reason() != "MISSING_SUBJECT_NAME" || len(violations) != 1 ||
		violations[0].(map[string]any)["field"] != "spec.subject_name" {
		t.Errorf("invalid argument: %d %s", a.status, a.raw)
	}

	a = fx.do(t, "POST", "/v1/verify", `{"code":"999999"}`)
	if got := a.header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2 (1.5s rounded up)", got)
	}
	if ri := a.detail("RetryInfo"); ri == nil || ri["retryDelay"] != "1.500s" {
		t.Errorf("RetryInfo %v", ri)
	}
}

// What the gateway refuses itself: bad JSON, unknown fields, bad parameters, big bodies, unknown
// routes and methods, a service that is down. Never a 500.
func TestEdgeErrors(t *testing.T) {
	down := rpctest.Dial(t, rpctest.FreeAddr(t))
	fx := serve(t, down)
	big := `{"requestId":"` + strings.Repeat("x", 2000) + `"}`
	cases := []struct {
		name, method, path, body string
		status                   int
		reason                   edgev1.ErrorReason
	}{
		{"bad json", "POST", "/v1/orders", `{"spec":`, 400, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST},
		{"not an object", "POST", "/v1/orders", `[1,2]`, 400, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST},
		{"unknown field", "POST", "/v1/orders", `{"spec":{"subjectNmae":"x"}}`, 400, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST},
		{"wrong type", "POST", "/v1/orders", `{"spec":{"subjectName":7}}`, 400, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST},
		{"bad query", "GET", "/v1/orders?pageSize=many", "", 400, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST},
		{"bad enum", "GET", "/v1/orders?state=NOPE", "", 400, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST},
		{"too large", "POST", "/v1/orders", big, 413, edgev1.ErrorReason_ERROR_REASON_BODY_TOO_LARGE},
		// /v1/verify, the hottest route, refuses bad bodies as every other route does.
		{"verify bad json", "POST", "/v1/verify", `{"phone":`, 400, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST},
		{"verify unknown field", "POST", "/v1/verify", `{"phnoe":"1"}`, 400, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST},
		{"verify duplicate", "POST", "/v1/verify", `{"code":"1","code":"2"}`, 400, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST},
		{"verify two values", "POST", "/v1/verify", `{"code":"1"}{}`, 400, edgev1.ErrorReason_ERROR_REASON_MALFORMED_REQUEST},
		{"verify too large", "POST", "/v1/verify", `{"code":"` + strings.Repeat("1", 2000) + `"}`, 413, edgev1.ErrorReason_ERROR_REASON_BODY_TOO_LARGE},
		{"no route", "GET", "/v1/nothing", "", 404, edgev1.ErrorReason_ERROR_REASON_ROUTE_NOT_FOUND},
		{"internal service", "POST", "/icp.filing.v1.FilingInternalService/MarkVerified", "{}", 404, edgev1.ErrorReason_ERROR_REASON_ROUTE_NOT_FOUND},
		{"wrong method", "DELETE", "/v1/orders/ord_7", "", 405, edgev1.ErrorReason_ERROR_REASON_METHOD_NOT_ALLOWED},
		{"service down", "POST", "/v1/verify", `{"code":"123456"}`, 503, edgev1.ErrorReason_ERROR_REASON_SERVICE_UNAVAILABLE},
	}
	for _, c := range cases {
		a := fx.do(t, c.method, c.path, c.body)
		if a.status != c.status || a.reason() != rpc.ReasonName(c.reason) {
			t.Errorf("%s: %d reason %q, want %d %s: %s", c.name, a.status, a.reason(), c.status, rpc.ReasonName(c.reason), a.raw)
		}
		if a.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", c.name, a.header.Get("Content-Type"))
		}
	}
	if a := fx.do(t, "POST", "/v1/verify", `{}`); a.header.Get("Retry-After") != "1" {
		t.Errorf("service down: Retry-After %q, want 1", a.header.Get("Retry-After"))
	}

	// A body without Content-Length (chunked) that grows past the limit is 413 as well.
	for _, path := range []string{"/v1/orders", "/v1/verify"} {
		req, _ := http.NewRequest("POST", fx.url+path, struct{ *strings.Reader }{strings.NewReader(big)})
		req.ContentLength = -1
		if a := send(t, req); a.status != 413 || a.reason() != "BODY_TOO_LARGE" {
			t.Errorf("%s chunked too large: %d %s", path, a.status, a.raw)
		}
	}
}

// Every reason of icp.edge.v1.ErrorReason is one the edge answers (TestEdgeErrors reaches each),
// and the names map both ways.
func TestReasonsEnum(t *testing.T) {
	values := edgev1.File_icp_edge_v1_edge_proto.Enums().ByName("ErrorReason").Values()
	for i := 1; i < values.Len(); i++ {
		r := edgev1.ErrorReason(values.Get(i).Number())
		name := rpc.ReasonName(r)
		if strings.HasPrefix(name, "ERROR_REASON_") || edgev1.ErrorReason_value["ERROR_REASON_"+name] != int32(r) {
			t.Errorf("reason %v: name %q does not map back", r, name)
		}
	}
}
