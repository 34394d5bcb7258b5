package page

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"google.golang.org/genproto/googleapis/rpc/errdetails"

	"github.com/icpverify/icpverify/pkg/clock"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// fakeVerification answers Verify and ResendCode with what the test set, and records the calls.
type fakeVerification struct {
	verificationv1.VerificationServiceClient
	verify    func(*verificationv1.VerifyRequest) (*verificationv1.VerifyResponse, error)
	resend    func(*verificationv1.ResendCodeRequest) (*verificationv1.ResendCodeResponse, error)
	getLink   func(*verificationv1.GetLinkRequest) (*verificationv1.GetLinkResponse, error)
	calls     int
	lastKey   []string
	lastPhone string
	lastLink  string
}

func (f *fakeVerification) GetLink(ctx context.Context, in *verificationv1.GetLinkRequest, _ ...grpc.CallOption) (*verificationv1.GetLinkResponse, error) {
	md, _ := metadata.FromOutgoingContext(ctx)
	f.lastKey = md.Get("x-api-key")
	return f.getLink(in)
}

func (f *fakeVerification) Verify(ctx context.Context, in *verificationv1.VerifyRequest, _ ...grpc.CallOption) (*verificationv1.VerifyResponse, error) {
	f.calls++
	md, _ := metadata.FromOutgoingContext(ctx)
	f.lastKey, f.lastPhone, f.lastLink = md.Get("x-api-key"), in.GetPhone(), in.GetLinkToken()
	return f.verify(in)
}

func (f *fakeVerification) ResendCode(ctx context.Context, in *verificationv1.ResendCodeRequest, _ ...grpc.CallOption) (*verificationv1.ResendCodeResponse, error) {
	f.calls++
	md, _ := metadata.FromOutgoingContext(ctx)
	f.lastKey, f.lastPhone = md.Get("x-api-key"), in.GetPhone()
	return f.resend(in)
}

func statusErr(c codes.Code, reason string, retry time.Duration) error {
	st, _ := status.New(c, "for developers only").WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "icp.verify"})
	if retry > 0 {
		st, _ = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	}
	return st.Err()
}

type harness struct {
	t      *testing.T
	srv    *httptest.Server
	client *http.Client
	fake   *fakeVerification
	clock  *clock.Fake
	page   *Page
}

func newHarness(t *testing.T, o Options) *harness {
	h := &harness{t: t, fake: &fakeVerification{}, clock: clock.NewFake(time.Date(2026, 12, 2, 4, 0, 0, 0, time.UTC))}
	o.Verification, o.Clock = h.fake, h.clock
	if o.APIKey == "" {
		o.APIKey = "authority-key"
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	h.page = p
	mux := http.NewServeMux()
	p.Register(mux)
	h.srv = httptest.NewServer(mux)
	t.Cleanup(h.srv.Close)
	jar, _ := cookiejar.New(nil)
	h.client = &http.Client{Jar: jar}
	return h
}

type answer struct {
	code   int
	header http.Header
	body   string
}

func (h *harness) get(path string) answer {
	h.t.Helper()
	resp, err := h.client.Get(h.srv.URL + path)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

var hiddenRE = regexp.MustCompile(`name="(csrf|captcha_id)" value="([^"]*)"`)

// post fetches the tab's form, fills in fields (plus the form's csrf and captcha id) and posts it.
func (h *harness) post(tab string, fields url.Values) answer {
	h.t.Helper()
	form := h.get("/?tab=" + tab)
	for _, m := range hiddenRE.FindAllStringSubmatch(form.body, -1) {
		if fields.Get(m[1]) == "" {
			fields.Set(m[1], m[2])
		}
	}
	if fields.Get("captcha") == "right" {
		fields.Set("captcha", h.page.captcha.answer(fields.Get("captcha_id")))
	}
	resp, err := h.client.PostForm(h.srv.URL+"/"+tab, fields)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func (a answer) has(t *testing.T, what string, code int, texts ...string) {
	t.Helper()
	if a.code != code {
		t.Errorf("%s: HTTP %d, want %d", what, a.code, code)
	}
	for _, s := range texts {
		if !strings.Contains(a.body, s) {
			t.Errorf("%s: the page lacks %q:\n%s", what, s, a.body)
		}
	}
}

func verifyForm(code string) url.Values {
	return url.Values{"code": {code}, "phone": {"13812345678"}, "id_tail": {"12345X"}}
}
