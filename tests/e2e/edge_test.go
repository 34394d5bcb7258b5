package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// edge is an edge process in front of a suite: its base URL.
type edge struct {
	t   *testing.T
	url string
}

// startEdge starts the edge against the suite's filing and verification and waits until /readyz
// answers 200 (both services healthy through it). Its log joins the suite's personal-data check.
func (s *suite) startEdge() *edge {
	s.t.Helper()
	addr := freeAddr(s.t)
	p := &proc{name: "edge", args: []string{"--http-addr=" + addr, "--filing-addr=" + s.addrs["filing"],
		"--verification-addr=" + s.addrs["verification"], "--max-body-bytes=4096"}, out: &bytes.Buffer{}}
	p.start(s.t)
	s.procs["edge"] = p
	e := &edge{t: s.t, url: "http://" + addr}
	eventually(s.t, 30*time.Second, "the edge to be ready", func() (bool, string) {
		if p.cmd.ProcessState != nil {
			s.t.Fatalf("the edge exited: %s", p.Output())
		}
		resp, err := http.Get(e.url + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return e
}

// reply is one HTTP answer of the edge.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// key sends the API key in X-Api-Key; bearer in Authorization; none sends no credential.
type credential func(*http.Request)

func key(k string) credential { return func(r *http.Request) { r.Header.Set("X-Api-Key", k) } }
func bearer(k string) credential {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+k) }
}
func none(*http.Request) {}

// call sends body (a message as protojson, raw bytes, or nothing) as cred.
func (e *edge) call(cred credential, method, path string, body any) reply {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case proto.Message:
		j, err := protojson.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	case string:
		rd = strings.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	cred(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return reply{status: resp.StatusCode, header: resp.Header, body: raw}
}

// ok checks a 200 and decodes the answer into into.
func (r reply) ok(t *testing.T, what string, into proto.Message) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("%s: HTTP %d %s", what, r.status, r.body)
	}
	if err := protojson.Unmarshal(r.body, into); err != nil {
		t.Fatalf("%s: %v: %s", what, err, r.body)
	}
}

// statusBody is the google.rpc.Status JSON of an error answer.
type statusBody struct {
	Code    int              `json:"code"`
	Message string           `json:"message"`
	Details []map[string]any `json:"details"`
}

// fails checks an error answer: the HTTP status, the ErrorInfo reason and, when field is set, the
// BadRequest field.
func (r reply) fails(t *testing.T, what string, httpStatus int, reason, field string) statusBody {
	t.Helper()
	var st statusBody
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatalf("%s: the body is not JSON: %v: %s", what, err, r.body)
	}
	var gotReason, gotField string
	for _, d := range st.Details {
		switch d["@type"] {
		case "type.googleapis.com/google.rpc.ErrorInfo":
			gotReason, _ = d["reason"].(string)
		case "type.googleapis.com/google.rpc.BadRequest":
			if v, _ := d["fieldViolations"].([]any); len(v) > 0 {
				gotField, _ = v[0].(map[string]any)["field"].(string)
			}
		}
	}
	if r.status != httpStatus || gotReason != reason || (field != "" && gotField != field) {
		t.Errorf("%s: HTTP %d reason %q field %q, want %d %q %q: %s", what, r.status, gotReason, gotField, httpStatus, reason, field, r.body)
	}
	return st
}

// oneSite is a FIRST_FILING order with one website whose person is the principal.
func oneSite(p *filingv1.Person) *filingv1.OrderSpec {
	return firstFiling(p, &filingv1.Website{Domain: fmt.Sprintf("site%d.example.cn", seq.Add(1)), Name: "站点", Person: p})
}

// Every public RPC over REST through a real edge process in front of the credentialed suite: an
// order created, updated, listed, read, submitted, its code resent and checked (a mismatch first),
// another cancelled; the services' errors with reason and field, the credential passed through
// (X-Api-Key and Bearer, none is 401, another tenant's order is 404), and the edge's own 400/413.
func TestEdgeREST(t *testing.T) {
	s := startSuite(t, options{verification: []string{"--resend-rate=0.01", "--resend-burst=2"}})
	e := s.startEdge()
	const v1 = "/v1/orders"

	principal := person("王五", phoneC)
	spec := firstFiling(principal, &filingv1.Website{Domain: "edge.example.cn", Name: "边缘", Person: principal})
	var created filingv1.CreateOrderResponse
	e.call(key(portalKey), "POST", v1, &filingv1.CreateOrderRequest{RequestId: "edge-create-1", Spec: spec}).ok(t, "CreateOrder", &created)
	id := created.GetOrder().GetOrderId()
	if created.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_DRAFT || id == "" {
		t.Fatalf("created %v", created.GetOrder())
	}

	spec.SubjectName = "杭州边缘科技有限公司"
	var updated filingv1.UpdateOrderResponse
	e.call(key(portalKey), "PATCH", v1+"/"+id, &filingv1.UpdateOrderRequest{RequestId: "edge-update-1", Spec: spec}).ok(t, "UpdateOrder", &updated)
	var got filingv1.GetOrderResponse
	e.call(bearer(portalKey), "GET", v1+"/"+id, nil).ok(t, "GetOrder with a bearer key", &got)
	if got.GetOrder().GetSpec().GetSubjectName() != spec.SubjectName {
		t.Errorf("GetOrder after UpdateOrder: subject %q", got.GetOrder().GetSpec().GetSubjectName())
	}
	var list filingv1.ListOrdersResponse
	e.call(key(portalKey), "GET", v1+"?pageSize=10&state=ORDER_STATE_DRAFT", nil).ok(t, "ListOrders", &list)
	if len(list.GetOrders()) != 1 || list.GetOrders()[0].GetOrderId() != id {
		t.Errorf("ListOrders: %v", list.GetOrders())
	}

	// The tenant rules are the services', unchanged: no credential is 401, another tenant sees nothing.
	e.call(none, "GET", v1+"/"+id, nil).fails(t, "GetOrder without a key", 401, "CREDENTIAL_MISSING", "")
	e.call(key("not-a-key-0123456789abcdef0123456789"), "GET", v1+"/"+id, nil).fails(t, "GetOrder with a wrong key", 401, "CREDENTIAL_INVALID", "")
	e.call(key(otherPortalKey), "GET", v1+"/"+id, nil).fails(t, "another tenant's GetOrder", 404, "ORDER_NOT_FOUND", "")
	e.call(key(otherPortalKey), "GET", v1+"/"+id+"/verification", nil).fails(t, "another tenant's status", 404, "SESSION_NOT_FOUND", "")
	var otherList filingv1.ListOrdersResponse
	e.call(key(otherPortalKey), "GET", v1, nil).ok(t, "another tenant's ListOrders", &otherList)
	if len(otherList.GetOrders()) != 0 {
		t.Errorf("another tenant lists %d orders", len(otherList.GetOrders()))
	}

	var submitted filingv1.SubmitOrderResponse
	e.call(key(portalKey), "POST", v1+"/"+id+":submit", &filingv1.SubmitOrderRequest{RequestId: "edge-submit-1"}).ok(t, "SubmitOrder", &submitted)
	if submitted.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
		t.Fatalf("submitted: %v", submitted.GetOrder().GetState())
	}
	// The session opens through filing's outbox, so the status may be 404 SESSION_NOT_FOUND at first.
	var vs verificationv1.GetVerificationStatusResponse
	eventually(t, 15*time.Second, "the verification status", func() (bool, string) {
		r := e.call(key(portalKey), "GET", v1+"/"+id+"/verification", nil)
		return r.status == 200 && protojson.Unmarshal(r.body, &vs) == nil, string(r.body)
	})
	if vs.GetStatus().GetState() != verificationv1.SessionState_SESSION_STATE_OPEN || len(vs.GetStatus().GetVerifiers()) != 1 {
		t.Errorf("status: %v", vs.GetStatus())
	}

	s.waitCodes(1, phoneC)
	var resent verificationv1.ResendCodeResponse
	e.call(key(portalKey), "POST", "/v1/resend", &verificationv1.ResendCodeRequest{RequestId: "edge-resend-1", Phone: phoneC,
		IdTail: tailOf(principal)}).ok(t, "ResendCode", &resent)
	if resent.GetResend().GetOrderId() != id {
		t.Errorf("resend: %v", resent.GetResend())
	}
	code := s.waitCodes(2, phoneC)[phoneC]

	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	e.call(key(portalKey), "POST", "/v1/verify", &verificationv1.VerifyRequest{Phone: phoneC, Code: wrong, IdTail: tailOf(principal)}).
		fails(t, "Verify with a wrong code", 404, "VERIFICATION_NOT_MATCHED", "")
	e.call(key(portalKey), "POST", "/v1/verify", &verificationv1.VerifyRequest{Phone: phoneC, Code: "12", IdTail: tailOf(principal)}).
		fails(t, "Verify with a malformed code", 400, "INVALID_CODE", "code")
	var verified verificationv1.VerifyResponse
	e.call(key(portalKey), "POST", "/v1/verify", &verificationv1.VerifyRequest{Phone: phoneC, Code: code, IdTail: tailOf(principal)}).ok(t, "Verify", &verified)
	if verified.GetResult() != verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED || verified.GetOrderId() != id {
		t.Errorf("verify: %v", &verified)
	}
	s.waitState(id, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)

	var other filingv1.CreateOrderResponse
	e.call(key(portalKey), "POST", v1, &filingv1.CreateOrderRequest{RequestId: "edge-create-2", Spec: oneSite(person("赵六", phoneA))}).ok(t, "CreateOrder 2", &other)
	var cancelled filingv1.CancelOrderResponse
	e.call(key(portalKey), "POST", v1+"/"+other.GetOrder().GetOrderId()+":cancel", &filingv1.CancelOrderRequest{RequestId: "edge-cancel-1",
		Reason: "duplicate"}).ok(t, "CancelOrder", &cancelled)
	if cancelled.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_CANCELLED {
		t.Errorf("cancelled: %v", cancelled.GetOrder().GetState())
	}

	// A service's InvalidArgument keeps its reason and field.
	bad := oneSite(person("钱七", "12345"))
	e.call(key(portalKey), "POST", v1, &filingv1.CreateOrderRequest{RequestId: "edge-create-3", Spec: bad}).
		fails(t, "CreateOrder with a bad phone", 400, "INVALID_PHONE", "spec.principal.phone")

	// The edge's own refusals: never a 500.
	e.call(key(portalKey), "POST", v1, `{"requestId": "x", "spec": {`).fails(t, "bad JSON", 400, "MALFORMED_REQUEST", "")
	e.call(key(portalKey), "POST", v1, `{"requestId": "x", "spek": {}}`).fails(t, "unknown field", 400, "MALFORMED_REQUEST", "")
	e.call(key(portalKey), "POST", v1, `{"requestId": "`+strings.Repeat("x", 5000)+`"}`).fails(t, "over-size body", 413, "BODY_TOO_LARGE", "")
	e.call(key(portalKey), "POST", "/icp.filing.v1.FilingInternalService/MarkVerified", `{}`).fails(t, "an internal RPC", 404, "ROUTE_NOT_FOUND", "")

	// The tenant's resend budget (burst 2 here): the service's 429 with RetryInfo becomes Retry-After.
	for i := range 3 {
		r := e.call(key(otherPortalKey), "POST", "/v1/resend", &verificationv1.ResendCodeRequest{RequestId: fmt.Sprintf("edge-rl-%d", i),
			Phone: phoneB, IdTail: "12345X"})
		if i < 2 {
			continue
		}
		r.fails(t, "the third resend", 429, "RATE_LIMITED", "")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("429 without Retry-After: %v", r.header)
		}
	}
}
