package page

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

const liveToken, deadToken = "Abcdefghijklmnopqrstu0", "Zbcdefghijklmnopqrstu0"

// linkHarness answers GetLink for liveToken with a masked phone and LINK_NOT_FOUND for anything else.
func linkHarness(t *testing.T, o Options) *harness {
	h := newHarness(t, o)
	h.fake.getLink = func(in *verificationv1.GetLinkRequest) (*verificationv1.GetLinkResponse, error) {
		if in.GetToken() == liveToken {
			return &verificationv1.GetLinkResponse{PhoneMasked: "138****5678", State: verificationv1.ChallengeState_CHALLENGE_STATE_PENDING}, nil
		}
		return nil, statusErr(codes.NotFound, "LINK_NOT_FOUND", 0)
	}
	return h
}

// postLink fetches the link's form and posts code and ID tail with its csrf (and captcha id).
func (h *harness) postLink(token string, fields url.Values) answer {
	h.t.Helper()
	form := h.get("/v/" + token)
	for _, m := range hiddenRE.FindAllStringSubmatch(form.body, -1) {
		fields.Set(m[1], m[2])
	}
	resp, err := h.client.PostForm(h.srv.URL+"/v/"+token, fields)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, string(b)}
}

func TestLinkPageShowsTheMaskedPhoneAndVerifiesThroughTheLink(t *testing.T) {
	h := linkHarness(t, Options{})
	a := h.get("/v/" + liveToken)
	a.has(t, "link page", http.StatusOK, "138****5678", `readonly`, "请填写短信验证码和证件号码后6位", `action="/v/`+liveToken+`?lang=zh-CN"`)
	if strings.Contains(a.body, `name="phone"`) {
		t.Error("the link page must not post a phone: it is the link's")
	}
	if got := a.header.Get("Content-Security-Policy"); got != csp || a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: CSP %q, Cache-Control %q", got, a.header.Get("Cache-Control"))
	}
	if k := h.fake.lastKey; len(k) != 1 || k[0] != "authority-key" {
		t.Errorf("GetLink went with key %v, want the edge's", k)
	}

	h.fake.verify = func(in *verificationv1.VerifyRequest) (*verificationv1.VerifyResponse, error) {
		if in.GetLinkToken() != liveToken || in.GetPhone() != "" || in.GetCode() != "123456" || in.GetIdTail() != "12345X" {
			return nil, statusErr(codes.NotFound, "VERIFICATION_NOT_MATCHED", 0)
		}
		return &verificationv1.VerifyResponse{Result: verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED,
			MessageZh: "您的短信核验已全部完成，该请求将提交管局审核"}, nil
	}
	h.postLink(liveToken, url.Values{"code": {"123456"}, "id_tail": {"12345X"}, "phone": {"13900000000"}}).has(t, "verify through the link",
		http.StatusOK, "您的短信核验已全部完成，该请求将提交管局审核")
	if h.fake.lastLink != liveToken || h.fake.lastPhone != "" {
		t.Errorf("Verify got link %q phone %q: want the link and no phone (a posted phone is ignored)", h.fake.lastLink, h.fake.lastPhone)
	}
	h.postLink(liveToken, url.Values{"code": {"654321"}, "id_tail": {"12345X"}}).has(t, "wrong code through the link",
		http.StatusOK, "该条验证库里找不到记录或已完成验证", "138****5678")
	h.get("/v/"+liveToken+"?lang=en").has(t, "English link page", http.StatusOK, "The phone number this verification SMS was sent to",
		`href="/v/`+liveToken+`?lang=zh-CN"`)
}

func TestDeadLinkIsOnePage(t *testing.T) {
	h := linkHarness(t, Options{})
	dead := h.get("/v/" + deadToken)
	dead.has(t, "dead link", http.StatusNotFound, "链接已失效", `href="/?lang=zh-CN&amp;tab=verify"`)
	if strings.Contains(dead.body, "<form") {
		t.Error("a dead link has no form")
	}
	malformed := h.get("/v/short")
	malformed.has(t, "malformed link", http.StatusNotFound, "链接已失效")
	h.fake.getLink = func(*verificationv1.GetLinkRequest) (*verificationv1.GetLinkResponse, error) {
		return nil, statusErr(codes.InvalidArgument, "INVALID_LINK_TOKEN", 0)
	}
	if again := h.get("/v/short"); again.body != malformed.body || again.code != dead.code {
		t.Errorf("a malformed token's page differs from a dead link's:\n%s\n%s", again.body, malformed.body)
	}
	h.get("/v/"+deadToken+"?lang=en").has(t, "dead link in English", http.StatusNotFound, "This link is no longer valid.")
}

func TestLinkPostIsGuarded(t *testing.T) {
	h := linkHarness(t, Options{CaptchaOnVerify: true})
	h.fake.verify = func(*verificationv1.VerifyRequest) (*verificationv1.VerifyResponse, error) {
		t.Fatal("Verify called past a failed guard")
		return nil, nil
	}
	resp, err := h.client.PostForm(h.srv.URL+"/v/"+liveToken, url.Values{"code": {"123456"}, "id_tail": {"12345X"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("post without CSRF: HTTP %d, want 403", resp.StatusCode)
	}
	h.postLink(liveToken, url.Values{"code": {"123456"}, "id_tail": {"12345X"}, "captcha": {"000000"}}).has(t, "wrong captcha",
		http.StatusBadRequest, "图形验证码错误")
}

// The SMS's language is the link page's default; a language the person picked wins.
func TestLinkPageSpeaksTheSMSLanguage(t *testing.T) {
	h := linkHarness(t, Options{})
	h.fake.getLink = func(*verificationv1.GetLinkRequest) (*verificationv1.GetLinkResponse, error) {
		return &verificationv1.GetLinkResponse{PhoneMasked: "138****5678", Locale: "en",
			State: verificationv1.ChallengeState_CHALLENGE_STATE_PENDING}, nil
	}
	a := h.get("/v/" + liveToken)
	a.has(t, "English SMS", http.StatusOK, `action="/v/`+liveToken+`?lang=en"`, `href="/v/`+liveToken+`?lang=zh-CN"`)
	if got := a.header.Get("Content-Language"); got != string(English) {
		t.Errorf("Content-Language %q, want %q", got, English)
	}
	// Picked by the switch (and then its cookie): Chinese, whatever the SMS's language.
	for _, path := range []string{"/v/" + liveToken + "?lang=zh-CN", "/v/" + liveToken} {
		a = h.get(path)
		a.has(t, path, http.StatusOK, `action="/v/`+liveToken+`?lang=zh-CN"`, "请填写短信验证码和证件号码后6位")
	}
}
