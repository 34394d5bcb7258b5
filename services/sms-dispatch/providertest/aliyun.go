package providertest

import (
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// Aliyun is a fake dysmsapi (2017-05-25 SendSms, V3 signature) with one AccessKey, one approved
// sign name and one approved template.
type Aliyun struct {
	record
	script
	srv *httptest.Server

	AccessKeyID, AccessKeySecret string
	SignName, TemplateCode       string
	// Variables are the approved template's variables; a request lacking one is refused
	// (isv.TEMPLATE_MISSING_PARAMETERS).
	Variables []string
	// Now is the fake's clock for the x-acs-date check (15 minutes); time.Now when nil.
	Now func() time.Time

	mu     sync.Mutex
	nonces map[string]bool
}

// NewAliyun starts a fake with an AccessKey and an approved sign name and template (its variables
// vars); Close stops it.
func NewAliyun(accessKeyID, accessKeySecret, signName, templateCode string, vars ...string) *Aliyun {
	f := &Aliyun{AccessKeyID: accessKeyID, AccessKeySecret: accessKeySecret, SignName: signName,
		TemplateCode: templateCode, Variables: vars, nonces: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// URL is the endpoint to give the provider (--aliyun-endpoint).
func (f *Aliyun) URL() string { return f.srv.URL + "/" }

// Close stops the server.
func (f *Aliyun) Close() { f.srv.Close() }

// FailNext makes the next n requests (that pass the signature check) answer code.
func (f *Aliyun) FailNext(n int, code string) { f.failNext(n, code) }

// FailPhone makes every request to phone (E.164) answer code; "" accepts it again.
func (f *Aliyun) FailPhone(phone, code string) { f.failPhone(phone, code) }

// aliyunMessages are the gateway's own messages for the codes a fake answers.
var aliyunMessages = map[string]string{
	"isv.BUSINESS_LIMIT_CONTROL":      "触发号码天级流控Permits:10",
	"isv.MOBILE_NUMBER_ILLEGAL":       "非法手机号",
	"isv.AMOUNT_NOT_ENOUGH":           "账户余额不足",
	"isp.SYSTEM_ERROR":                "系统错误",
	"Throttling.User":                 "Request was denied due to user flow control.",
	"isv.SMS_SIGNATURE_ILLEGAL":       "该账号下找不到对应签名",
	"isv.SMS_TEMPLATE_ILLEGAL":        "该账号下找不到对应模板",
	"isv.TEMPLATE_MISSING_PARAMETERS": "模板变量缺少对应参数值",
	"isv.INVALID_JSON_PARAM":          "JSON参数不合法，只接受字符串值",
	"SignatureDoesNotMatch":           "Specified signature does not match our calculation.",
	"IncompleteSignature":             "The request signature does not conform to Aliyun standards.",
	"InvalidAccessKeyId.NotFound":     "Specified access key is not found.",
	"InvalidTimeStamp.Expired":        "Specified time stamp or date value is expired.",
	"SignatureNonceUsed":              "Specified signature nonce was used already.",
	"InvalidAction.NotFound":          "Specified api is not found, please check your url and method.",
	"MissingPhoneNumbers":             "PhoneNumbers is mandatory for this action.",
}

func (f *Aliyun) answer(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"RequestId": requestID(), "Code": code, "Message": aliyunMessages[code]})
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := strings.ToUpper(hex.EncodeToString(b))
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

var acs3Auth = regexp.MustCompile(`^ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})$`)

var requiredACS3 = []string{"host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"}

// mainland is a mainland mobile number as PhoneNumbers takes it.
var mainland = regexp.MustCompile(`^1[3-9]\d{9}$`)

func (f *Aliyun) serve(w http.ResponseWriter, r *http.Request) {
	f.count()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		f.answer(w, http.StatusBadRequest, "InvalidAction.NotFound")
		return
	}
	m := acs3Auth.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		f.answer(w, http.StatusBadRequest, "IncompleteSignature")
		return
	}
	keyID, signedList, sig := m[1], strings.Split(m[2], ";"), m[3]
	if keyID != f.AccessKeyID {
		f.answer(w, http.StatusNotFound, "InvalidAccessKeyId.NotFound")
		return
	}
	// Every x-acs- header and host must be signed.
	signed := map[string]bool{}
	for _, h := range signedList {
		signed[h] = true
	}
	for _, h := range requiredACS3 {
		if !signed[h] {
			f.answer(w, http.StatusBadRequest, "IncompleteSignature")
			return
		}
	}
	for name := range r.Header {
		if n := strings.ToLower(name); strings.HasPrefix(n, "x-acs-") && !signed[n] {
			f.answer(w, http.StatusBadRequest, "IncompleteSignature")
			return
		}
	}
	headers := map[string]string{}
	for h := range signed {
		if h == "host" {
			headers[h] = r.Host
		} else {
			headers[h] = r.Header.Get(h)
		}
	}
	canonical, _ := provider.ACS3CanonicalRequest(r.Method, r.URL.Query(), headers, headers["x-acs-content-sha256"])
	want := provider.ACS3Signature(f.AccessKeySecret, canonical)
	if !hmac.Equal([]byte(sig), []byte(want)) || headers["x-acs-content-sha256"] != sha256Hex(body) {
		f.answer(w, http.StatusBadRequest, "SignatureDoesNotMatch")
		return
	}
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	at, err := time.Parse("2006-01-02T15:04:05Z", headers["x-acs-date"])
	if err != nil || now().Sub(at).Abs() > 15*time.Minute {
		f.answer(w, http.StatusBadRequest, "InvalidTimeStamp.Expired")
		return
	}
	f.mu.Lock()
	used := f.nonces[headers["x-acs-signature-nonce"]]
	f.nonces[headers["x-acs-signature-nonce"]] = true
	f.mu.Unlock()
	if used {
		f.answer(w, http.StatusBadRequest, "SignatureNonceUsed")
		return
	}
	if headers["x-acs-action"] != provider.AliyunAction || headers["x-acs-version"] != provider.AliyunVersion {
		f.answer(w, http.StatusNotFound, "InvalidAction.NotFound")
		return
	}
	q := r.URL.Query()
	number := q.Get("PhoneNumbers")
	if number == "" {
		f.answer(w, http.StatusBadRequest, "MissingPhoneNumbers")
		return
	}
	phone := "+" + number
	if mainland.MatchString(number) {
		phone = "+86" + number
	}
	if code := f.take(phone); code != "" {
		status := http.StatusOK
		if !strings.HasPrefix(code, "isv.") && !strings.HasPrefix(code, "isp.") {
			status = http.StatusBadRequest
		}
		f.answer(w, status, code)
		return
	}
	var params map[string]string
	switch {
	case q.Get("SignName") != f.SignName:
		f.answer(w, http.StatusOK, "isv.SMS_SIGNATURE_ILLEGAL")
		return
	case q.Get("TemplateCode") != f.TemplateCode:
		f.answer(w, http.StatusOK, "isv.SMS_TEMPLATE_ILLEGAL")
		return
	case json.Unmarshal([]byte(q.Get("TemplateParam")), &params) != nil:
		f.answer(w, http.StatusOK, "isv.INVALID_JSON_PARAM")
		return
	case strings.HasPrefix(phone, "+86") && !mainland.MatchString(number):
		f.answer(w, http.StatusOK, "isv.MOBILE_NUMBER_ILLEGAL")
		return
	}
	for _, v := range f.Variables {
		if params[v] == "" {
			f.answer(w, http.StatusOK, "isv.TEMPLATE_MISSING_PARAMETERS")
			return
		}
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	ordered := make([]string, len(names))
	for i, k := range names {
		ordered[i] = params[k]
	}
	bizID := fmt.Sprintf("%d^0", time.Now().UnixNano())
	f.add(Accepted{MessageID: q.Get("OutId"), Phone: phone, SignName: q.Get("SignName"), Template: q.Get("TemplateCode"),
		Params: params, Ordered: ordered, ProviderID: bizID})
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_ = json.NewEncoder(w).Encode(provider.AliyunAnswer{Code: "OK", Message: "OK", BizID: bizID, RequestID: requestID()})
}
