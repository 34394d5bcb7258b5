package page

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

func TestPageRendersBothTabsWithItsHeaders(t *testing.T) {
	h := newHarness(t, Options{})
	a := h.get("/")
	a.has(t, "GET /", http.StatusOK, `<html lang="zh-CN">`, `name="viewport"`, `<label for="code">短信验证码</label>`,
		`autocomplete="one-time-code"`, `inputmode="numeric"`, `role="status" aria-live="polite"`, `aria-current="page"`, ">提交<",
		`href="/?lang=zh-CN&amp;tab=resend"`)
	if strings.Contains(a.body, `name="captcha"`) {
		t.Error("the verify form asks for the captcha without --page-captcha-on-verify")
	}
	if strings.Contains(a.body, "<script") || strings.Contains(a.body, " style=") {
		t.Error("the page has inline script or style")
	}
	for k, want := range map[string]string{"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff",
		"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"} {
		if got := a.header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "form-action 'self'") {
		t.Errorf("csp %q", csp)
	}
	h.get("/?tab=resend").has(t, "GET /?tab=resend", http.StatusOK, `<label for="captcha">图形验证码</label>`, `/captcha/`, "收听语音验证码")
	h.get("/verify?lang=en").has(t, "English", http.StatusOK, `<html lang="en">`, "SMS verification code", ">Submit<")
	// The switch sticks (cookie) for the next page without ?lang=.
	h.get("/?tab=resend").has(t, "English remembered", http.StatusOK, `<html lang="en">`, "Image code")
	css := h.get("/static/page.css")
	if css.code != 200 || !strings.HasPrefix(css.header.Get("Content-Type"), "text/css") {
		t.Errorf("css: %d %s", css.code, css.header.Get("Content-Type"))
	}
}

func TestVerifyAnswers(t *testing.T) {
	h := newHarness(t, Options{})
	h.fake.verify = func(in *verificationv1.VerifyRequest) (*verificationv1.VerifyResponse, error) {
		switch in.GetCode() {
		case "111111":
			return &verificationv1.VerifyResponse{Result: verificationv1.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS,
				MessageZh: "您的短信核验完成，请等待其他核验人进行短信核验", MessageEn: "Your SMS verification is complete. Please wait for the other verifiers."}, nil
		case "222222":
			return &verificationv1.VerifyResponse{Result: verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED,
				MessageZh: "您的短信核验已全部完成，该请求将提交管局审核"}, nil
		case "12":
			return nil, statusErr(codes.InvalidArgument, "INVALID_CODE", 0)
		case "333333":
			return nil, statusErr(codes.ResourceExhausted, "TOO_MANY_MISMATCHED_PHONES", 90*time.Second)
		case "444444":
			return nil, statusErr(codes.Unavailable, "", 0)
		}
		return nil, statusErr(codes.NotFound, "VERIFICATION_NOT_MATCHED", 0)
	}
	h.post("verify", verifyForm("000000")).has(t, "mismatch", http.StatusOK, "该条验证库里找不到记录或已完成验证")
	if len(h.fake.lastKey) != 1 || h.fake.lastKey[0] != "authority-key" || h.fake.lastPhone != "13812345678" {
		t.Errorf("the call carried key %v phone %q", h.fake.lastKey, h.fake.lastPhone)
	}
	a := h.post("verify", verifyForm("111111"))
	a.has(t, "first verifier", http.StatusOK, `<p id="answer-text">您的短信核验完成，请等待其他核验人进行短信核验</p>`)
	if a.header.Get("Cache-Control") != "no-store" {
		t.Errorf("answer Cache-Control %q", a.header.Get("Cache-Control"))
	}
	h.post("verify", verifyForm("222222")).has(t, "second verifier", http.StatusOK, "您的短信核验已全部完成，该请求将提交管局审核")
	h.post("verify", verifyForm("12")).has(t, "bad code", http.StatusBadRequest, `aria-invalid="true"`, "验证码应为6位数字。", `aria-describedby="code-hint code-err"`)
	// 04:00 UTC + 90 s is 12:01:30 in Beijing.
	a = h.post("verify", verifyForm("333333"))
	a.has(t, "too many phones", http.StatusTooManyRequests, "核验失败次数过多，请于12:01:30（北京时间）后再试。")
	if a.header.Get("Retry-After") != "90" {
		t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
	}
	a = h.post("verify", verifyForm("444444"))
	a.has(t, "down", http.StatusServiceUnavailable, "系统繁忙，请稍后再试。")
	if strings.Contains(a.body, "for developers only") {
		t.Error("the page shows the service's message")
	}
	h.get("/?lang=en")
	h.post("verify", verifyForm("111111")).has(t, "English answer", http.StatusOK, "Your SMS verification is complete. Please wait for the other verifiers.")
	h.post("verify", verifyForm("000000")).has(t, "English mismatch", http.StatusOK, "No pending verification matches these details, or it is already complete.")
}

func TestResendNeedsTheCaptcha(t *testing.T) {
	h := newHarness(t, Options{})
	next := statusErr(codes.ResourceExhausted, "RESEND_TOO_SOON", 45*time.Second)
	previous := verificationv1.CodeDelivery_CODE_DELIVERY_DELIVERED
	h.fake.resend = func(in *verificationv1.ResendCodeRequest) (*verificationv1.ResendCodeResponse, error) {
		if !strings.HasPrefix(in.GetRequestId(), "page-") {
			t.Errorf("request id %q", in.GetRequestId())
		}
		if err := next; err != nil {
			next = nil
			return nil, err
		}
		return &verificationv1.ResendCodeResponse{Resend: &verificationv1.Resend{ResendsLeft: 1, PreviousDelivery: previous}}, nil
	}
	form := func(captcha string) url.Values {
		return url.Values{"phone": {"13812345678"}, "id_tail": {"12345X"}, "captcha": {captcha}}
	}
	h.post("resend", form("")).has(t, "no captcha", http.StatusBadRequest, "图形验证码错误，请重新输入。", `aria-describedby="captcha-hint captcha-err"`)
	h.post("resend", form("not the answer")).has(t, "wrong captcha", http.StatusBadRequest, "图形验证码错误，请重新输入。")
	if h.fake.calls != 0 {
		t.Fatalf("the service was called %d times without a right captcha", h.fake.calls)
	}
	h.post("resend", form("right")).has(t, "too soon", http.StatusTooManyRequests, "短信重发过于频繁，请于12:00:45（北京时间）后再试。")
	h.post("resend", form("right")).has(t, "sent", http.StatusOK, "您的短信已发送成功，还可重发1次。")
	if a := h.post("resend", form("right")); strings.Contains(a.body, "未能送达") {
		t.Error("the advice for an undelivered SMS shows after a delivered one")
	}
	// The replaced code's SMS never arrived: the answer advises another number.
	previous = verificationv1.CodeDelivery_CODE_DELIVERY_UNDELIVERED
	h.post("resend", form("right")).has(t, "sent after an undelivered code", http.StatusOK, "您的短信已发送成功，还可重发1次。",
		`<p id="answer-note">上一条短信未能送达该手机号码。`)
	previous = verificationv1.CodeDelivery_CODE_DELIVERY_DELIVERED
	// A captcha is good once.
	f := h.get("/?tab=resend")
	id := hiddenRE.FindAllStringSubmatch(f.body, -1)
	var csrfTok, captchaID string
	for _, m := range id {
		if m[1] == "csrf" {
			csrfTok = m[2]
		} else {
			captchaID = m[2]
		}
	}
	ans := h.page.captcha.answer(captchaID)
	v := form(ans)
	v.Set("csrf", csrfTok)
	v.Set("captcha_id", captchaID)
	for i, want := range []int{http.StatusOK, http.StatusBadRequest} {
		resp, err := h.client.PostForm(h.srv.URL+"/resend", v)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("post %d of one captcha: %d, want %d", i+1, resp.StatusCode, want)
		}
	}
	// The image and the audio are served while the captcha is unused; an unknown id is 404.
	f = h.get("/?tab=resend")
	captchaID = hiddenRE.FindAllStringSubmatch(f.body, -1)[1][2]
	if a := h.get("/captcha/" + captchaID + ".png"); a.code != 200 || a.header.Get("Content-Type") != "image/png" {
		t.Errorf("image: %d %s", a.code, a.header.Get("Content-Type"))
	}
	if a := h.get("/captcha/" + captchaID + ".wav?lang=zh"); a.code != 200 || !strings.HasPrefix(a.body, "RIFF") {
		t.Errorf("audio: %d", a.code)
	}
	if a := h.get("/captcha/nope.png"); a.code != 404 {
		t.Errorf("unknown captcha: %d", a.code)
	}
}

func TestCaptchaOnVerifyWhenConfigured(t *testing.T) {
	h := newHarness(t, Options{CaptchaOnVerify: true})
	h.fake.verify = func(*verificationv1.VerifyRequest) (*verificationv1.VerifyResponse, error) {
		return nil, statusErr(codes.NotFound, "VERIFICATION_NOT_MATCHED", 0)
	}
	h.get("/").has(t, "verify form", http.StatusOK, `name="captcha"`)
	h.post("verify", verifyForm("000000")).has(t, "without captcha", http.StatusBadRequest, "图形验证码错误")
	f := verifyForm("000000")
	f.Set("captcha", "right")
	h.post("verify", f).has(t, "with captcha", http.StatusOK, "该条验证库里找不到记录或已完成验证")
}

func TestCSRFRefused(t *testing.T) {
	h := newHarness(t, Options{})
	h.fake.verify = func(*verificationv1.VerifyRequest) (*verificationv1.VerifyResponse, error) {
		t.Error("called without a valid token")
		return nil, nil
	}
	h.get("/") // a cookie, but a forged token
	f := verifyForm("000000")
	f.Set("csrf", "forged")
	resp, err := h.client.PostForm(h.srv.URL+"/verify", f)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("forged token: %d", resp.StatusCode)
	}
	// A token from another browser (another cookie) is refused too.
	other := newHarness(t, Options{})
	tok := hiddenRE.FindStringSubmatch(other.get("/").body)[2]
	f.Set("csrf", tok)
	resp, err = h.client.PostForm(h.srv.URL+"/verify", f)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("another browser's token: %d", resp.StatusCode)
	}
}

func TestRateLimitPerClient(t *testing.T) {
	h := newHarness(t, Options{RatePerSecond: 1.0 / 60, Burst: 2})
	h.fake.verify = func(*verificationv1.VerifyRequest) (*verificationv1.VerifyResponse, error) {
		return nil, statusErr(codes.NotFound, "VERIFICATION_NOT_MATCHED", 0)
	}
	h.post("verify", verifyForm("000000")).has(t, "1", http.StatusOK)
	h.post("verify", verifyForm("000000")).has(t, "2", http.StatusOK)
	a := h.post("verify", verifyForm("000000"))
	a.has(t, "3", http.StatusTooManyRequests, "操作过于频繁，请于12:01:00（北京时间）后再试。")
	if a.header.Get("Retry-After") != "60" || h.fake.calls != 2 {
		t.Errorf("Retry-After %q, %d calls", a.header.Get("Retry-After"), h.fake.calls)
	}
	h.clock.Advance(time.Minute)
	h.post("verify", verifyForm("000000")).has(t, "after a minute", http.StatusOK)
}
