package provider_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
)

const (
	testPhone    = "+8613812345678"
	testCode     = "482913"
	testDeadline = "2026-11-27 10:00"
	aliyunID     = "LTAI5tQyd8Kz3mPfR1nW7xYv"
	aliyunSecret = "Yk2Pq9Zr7Lm4Wt1Nb8Xc3Vd6Hs5Jg0"
	tencentID    = "AKIDq7Rt2Yp9Lm3Kz8Wn4Xb6Vc1Hs5Jg0"
	tencentKey   = "Pz8Qw3Er6Ty1Ui4Op7As2Df5Gh9Jk0Lz"
)

func message(id string) provider.Message {
	return provider.Message{ID: id, Phone: testPhone, Text: "【ICP备案】您的短信核验码为" + testCode + "…", Sender: "12381",
		Values: map[string]string{"code": testCode, "deadline": testDeadline}}
}

func newAliyun(t *testing.T) (*providertest.Aliyun, *provider.Aliyun) {
	t.Helper()
	fake := providertest.NewAliyun(aliyunID, aliyunSecret, "ICP备案", "SMS_472035118", "code", "time")
	t.Cleanup(fake.Close)
	params, err := provider.ParseNamedParams("code=code, time=deadline")
	if err != nil {
		t.Fatal(err)
	}
	return fake, &provider.Aliyun{Endpoint: fake.URL(), AccessKeyID: aliyunID, AccessKeySecret: aliyunSecret,
		SignName: "ICP备案", TemplateCode: "SMS_472035118", Params: params, Client: &http.Client{Timeout: 5 * time.Second}}
}

func newTencent(t *testing.T) (*providertest.Tencent, *provider.Tencent) {
	t.Helper()
	fake := providertest.NewTencent(tencentID, tencentKey, "1400787878", "ICP备案", "1937261", 2)
	t.Cleanup(fake.Close)
	params, err := provider.ParsePositionalParams("code,deadline")
	if err != nil {
		t.Fatal(err)
	}
	return fake, &provider.Tencent{Endpoint: fake.URL(), Region: provider.DefaultTencentRegion, SecretID: tencentID,
		SecretKey: tencentKey, SdkAppID: "1400787878", SignName: "ICP备案", TemplateID: "1937261", Params: params,
		Client: &http.Client{Timeout: 5 * time.Second}}
}

// noSecrets fails when an error names a credential, the phone (E.164 or national) or the code.
func noSecrets(t *testing.T, err error) {
	t.Helper()
	for _, s := range []string{aliyunSecret, tencentKey, testPhone, strings.TrimPrefix(testPhone, "+86"), testCode} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q names %s…", err, s[:3])
		}
	}
}

func TestAliyunSendsTheTemplate(t *testing.T) {
	fake, p := newAliyun(t)
	acc, err := p.Send(context.Background(), message("m-1"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := fake.Accepted()
	if len(got) != 1 {
		t.Fatalf("accepted %d", len(got))
	}
	a := got[0]
	if a.MessageID != "m-1" || a.Phone != testPhone || a.SignName != "ICP备案" || a.Template != "SMS_472035118" ||
		a.Params["code"] != testCode || a.Params["time"] != testDeadline || len(a.Params) != 2 || a.Code() != testCode {
		t.Fatalf("accepted %+v", a)
	}
	// The gateway's id of the message (BizId, SerialNo) is what its receipts name it by.
	if len(acc.ProviderIDs) != 1 || acc.ProviderIDs[0] == "" || acc.ProviderIDs[0] != a.ProviderID {
		t.Fatalf("Send answered provider ids %v, the fake gave %q", acc.ProviderIDs, a.ProviderID)
	}
}

func TestAliyunPhoneNumbers(t *testing.T) {
	for in, want := range map[string]string{"+8613812345678": "13812345678", "+85261234567": "85261234567"} {
		if got := provider.AliyunPhone(in); got != want {
			t.Errorf("AliyunPhone(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestAliyunClasses(t *testing.T) {
	for code, want := range map[string]provider.Class{
		"isv.BUSINESS_LIMIT_CONTROL": provider.PerNumberLimit,
		"isv.MOBILE_NUMBER_ILLEGAL":  provider.Permanent,
		"isv.AMOUNT_NOT_ENOUGH":      provider.Account,
		"isv.SMS_TEMPLATE_ILLEGAL":   provider.Account,
		"isp.SYSTEM_ERROR":           provider.Transient,
		"Throttling.User":            provider.Transient,
	} {
		t.Run(code, func(t *testing.T) {
			fake, p := newAliyun(t)
			fake.FailNext(1, code)
			_, err := p.Send(context.Background(), message("m-1"))
			if err == nil || provider.ClassOf(err) != want || !strings.Contains(err.Error(), code) {
				t.Fatalf("Send = %v (class %s), want a %s error naming %s", err, provider.ClassOf(err), want, code)
			}
			noSecrets(t, err)
			if len(fake.Accepted()) != 0 {
				t.Fatal("a refused message was recorded as accepted")
			}
			// The script is spent: the retry goes through.
			if _, err := p.Send(context.Background(), message("m-1")); err != nil {
				t.Fatalf("retry: %v", err)
			}
		})
	}
}

func TestAliyunPerPhoneScript(t *testing.T) {
	fake, p := newAliyun(t)
	fake.FailPhone(testPhone, "isv.MOBILE_NUMBER_ILLEGAL")
	for range 2 {
		if _, err := p.Send(context.Background(), message("m-1")); provider.ClassOf(err) != provider.Permanent {
			t.Fatalf("Send = %v, want permanent", err)
		}
	}
	other := message("m-2")
	other.Phone = "+8613987654321"
	if _, err := p.Send(context.Background(), other); err != nil {
		t.Fatalf("another phone: %v", err)
	}
}

// The fake checks the signature as the gateway does: a wrong secret, an unknown key, a stale clock,
// a request changed after signing are refused with the gateway's codes, classified Account.
func TestAliyunFakeChecksTheSignature(t *testing.T) {
	cases := map[string]func(p *provider.Aliyun){
		"SignatureDoesNotMatch":       func(p *provider.Aliyun) { p.AccessKeySecret = "Wrong7Secret3Value9Xy2" },
		"InvalidAccessKeyId.NotFound": func(p *provider.Aliyun) { p.AccessKeyID = "LTAI5tUnknownKey" },
		"InvalidTimeStamp.Expired":    func(p *provider.Aliyun) { p.Now = func() time.Time { return time.Now().Add(-20 * time.Minute) } },
		"SignatureDoesNotMatch/tampered": func(p *provider.Aliyun) {
			p.Client.Transport = rewrite(func(r *http.Request) {
				q := r.URL.Query()
				q.Set("PhoneNumbers", "13900000000")
				r.URL.RawQuery = provider.ACS3Query(q)
			})
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			fake, p := newAliyun(t)
			change(p)
			_, err := p.Send(context.Background(), message("m-1"))
			code, _, _ := strings.Cut(name, "/")
			if err == nil || provider.ClassOf(err) != provider.Account || !strings.Contains(err.Error(), code) {
				t.Fatalf("Send = %v, want an account error naming %s", err, code)
			}
			noSecrets(t, err)
			if len(fake.Accepted()) != 0 {
				t.Fatal("accepted")
			}
		})
	}
}

func TestAliyunTransportErrorHidesTheQuery(t *testing.T) {
	fake, p := newAliyun(t)
	fake.Close()
	_, err := p.Send(context.Background(), message("m-1"))
	if err == nil || provider.ClassOf(err) != provider.Transient {
		t.Fatalf("Send = %v, want transient", err)
	}
	noSecrets(t, err)
	if strings.Contains(err.Error(), "TemplateParam") || strings.Contains(err.Error(), "Signature") {
		t.Fatalf("error repeats the request: %v", err)
	}
}

func TestTencentSendsTheTemplate(t *testing.T) {
	fake, p := newTencent(t)
	acc, err := p.Send(context.Background(), message("m-1"))
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	got := fake.Accepted()
	if len(got) != 1 {
		t.Fatalf("accepted %d", len(got))
	}
	a := got[0]
	if a.MessageID != "m-1" || a.Phone != testPhone || a.Template != "1937261" || a.SignName != "ICP备案" ||
		len(a.Ordered) != 2 || a.Ordered[0] != testCode || a.Ordered[1] != testDeadline {
		t.Fatalf("accepted %+v", a)
	}
	// The gateway's id of the message (BizId, SerialNo) is what its receipts name it by.
	if len(acc.ProviderIDs) != 1 || acc.ProviderIDs[0] == "" || acc.ProviderIDs[0] != a.ProviderID {
		t.Fatalf("Send answered provider ids %v, the fake gave %q", acc.ProviderIDs, a.ProviderID)
	}
}

func TestTencentClasses(t *testing.T) {
	for code, want := range map[string]provider.Class{
		"LimitExceeded.PhoneNumberDailyLimit":             provider.PerNumberLimit,
		"LimitExceeded.PhoneNumberThirtySecondLimit":      provider.PerNumberLimit,
		"InvalidParameterValue.IncorrectPhoneNumber":      provider.Permanent,
		"FailedOperation.PhoneNumberInBlacklist":          provider.Permanent,
		"FailedOperation.InsufficientBalanceInSmsPackage": provider.Account,
		"InternalError.Timeout":                           provider.Transient,
		"RequestLimitExceeded":                            provider.Transient,
		"InternalError":                                   provider.Transient,
	} {
		t.Run(code, func(t *testing.T) {
			fake, p := newTencent(t)
			fake.FailNext(1, code)
			_, err := p.Send(context.Background(), message("m-1"))
			if err == nil || provider.ClassOf(err) != want || !strings.Contains(err.Error(), code) {
				t.Fatalf("Send = %v (class %s), want a %s error naming %s", err, provider.ClassOf(err), want, code)
			}
			noSecrets(t, err)
			if _, err := p.Send(context.Background(), message("m-1")); err != nil {
				t.Fatalf("retry: %v", err)
			}
		})
	}
}

func TestTencentFakeChecksTheRequest(t *testing.T) {
	cases := map[string]func(p *provider.Tencent){
		"AuthFailure.SignatureFailure":                   func(p *provider.Tencent) { p.SecretKey = "Wrong7Secret3Value9Xy2" },
		"AuthFailure.SecretIdNotFound":                   func(p *provider.Tencent) { p.SecretID = "AKIDunknown" },
		"AuthFailure.SignatureExpire":                    func(p *provider.Tencent) { p.Now = func() time.Time { return time.Now().Add(-10 * time.Minute) } },
		"FailedOperation.TemplateIncorrectOrUnapproved":  func(p *provider.Tencent) { p.TemplateID = "1000000" },
		"FailedOperation.SignatureIncorrectOrUnapproved": func(p *provider.Tencent) { p.SignName = "别的签名" },
		"AuthFailure.SignatureFailure/tampered": func(p *provider.Tencent) {
			p.Client.Transport = rewrite(func(r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				b = bytes.Replace(b, []byte(testPhone), []byte("+8613900000000"), 1)
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
			})
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			fake, p := newTencent(t)
			change(p)
			_, err := p.Send(context.Background(), message("m-1"))
			code, _, _ := strings.Cut(name, "/")
			if err == nil || provider.ClassOf(err) != provider.Account || !strings.Contains(err.Error(), code) {
				t.Fatalf("Send = %v, want an account error naming %s", err, code)
			}
			noSecrets(t, err)
			if len(fake.Accepted()) != 0 {
				t.Fatal("accepted")
			}
		})
	}
}

func TestTemplateParams(t *testing.T) {
	if _, err := provider.ParseNamedParams("code=otp"); err == nil {
		t.Error("an unknown value was taken")
	}
	if _, err := provider.ParseNamedParams("code"); err == nil {
		t.Error("a named mapping without = was taken")
	}
	if _, err := provider.ParseNamedParams("a=code,a=deadline"); err == nil {
		t.Error("a variable given twice was taken")
	}
	if _, err := provider.ParsePositionalParams(" , "); err == nil {
		t.Error("an empty list was taken")
	}
	// A message without a value the template needs can never go through it.
	_, p := newAliyun(t)
	m := message("m-1")
	delete(m.Values, "deadline")
	if _, err := p.Send(context.Background(), m); provider.ClassOf(err) != provider.Permanent {
		t.Fatalf("Send = %v, want permanent", err)
	}
}

type rewrite func(*http.Request)

func (f rewrite) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	f(r)
	return http.DefaultTransport.RoundTrip(r)
}
