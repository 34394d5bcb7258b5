package providertest

import (
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// Tencent is a fake Tencent Cloud SMS API (2021-01-11 SendSms, TC3-HMAC-SHA256) with one key pair,
// one SDK app, one approved sign name and one approved template taking Params values.
type Tencent struct {
	record
	script
	srv *httptest.Server

	SecretID, SecretKey, SdkAppID, SignName, TemplateID string
	// Params is how many values the approved template takes ({1}…{Params}).
	Params int
	// Now is the fake's clock for the X-TC-Timestamp check (5 minutes); time.Now when nil.
	Now func() time.Time
}

// NewTencent starts a fake; Close stops it.
func NewTencent(secretID, secretKey, sdkAppID, signName, templateID string, params int) *Tencent {
	f := &Tencent{SecretID: secretID, SecretKey: secretKey, SdkAppID: sdkAppID, SignName: signName,
		TemplateID: templateID, Params: params}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	return f
}

// URL is the endpoint to give the provider (--tencent-endpoint).
func (f *Tencent) URL() string { return f.srv.URL + "/" }

// Close stops the server.
func (f *Tencent) Close() { f.srv.Close() }

// FailNext makes the next n requests (that pass the signature check) answer code: the request's
// Error for the request-level codes (AuthFailure.*, RequestLimitExceeded, InternalError), else the
// number's SendStatusSet entry.
func (f *Tencent) FailNext(n int, code string) { f.failNext(n, code) }

// FailPhone makes every request to phone (E.164) answer code (as FailNext); "" accepts it again.
func (f *Tencent) FailPhone(phone, code string) { f.failPhone(phone, code) }

var tencentMessages = map[string]string{
	"AuthFailure.SignatureFailure":                             "The provided credentials could not be validated. Please check your signature is correct.",
	"AuthFailure.SecretIdNotFound":                             "The SecretId is not found, please ensure that your SecretId is correct.",
	"AuthFailure.SignatureExpire":                              "Signature expired. Timestamp and server time cannot differ by more than 5 minutes.",
	"AuthFailure.InvalidAuthorization":                         "Authorization is invalid.",
	"InvalidAction":                                            "The requested action does not exist.",
	"NoSuchVersion":                                            "The requested version does not exist.",
	"MissingParameter":                                         "The request is missing a required parameter.",
	"RequestLimitExceeded":                                     "Your current request times equals to 20 in a second, which exceeds the frequency limit.",
	"InternalError":                                            "An internal error has occurred. Retry your request.",
	"FailedOperation.FailResolvePacket":                        "request package parse failed",
	"InvalidParameterValue.SdkAppIdNotExist":                   "SdkAppId not exist.",
	"FailedOperation.SignatureIncorrectOrUnapproved":           "signature format is incorrect or signature is not approved",
	"FailedOperation.TemplateIncorrectOrUnapproved":            "template is not approved or request content does not match the approved template content",
	"FailedOperation.TemplateParamSetNotMatchApprovedTemplate": "request content does not match template content",
	"InvalidParameterValue.IncorrectPhoneNumber":               "invalid mobile number",
	"LimitExceeded.PhoneNumberDailyLimit":                      "the number of SMS messages sent from a single mobile number every day exceeds the upper limit",
	"LimitExceeded.PhoneNumberThirtySecondLimit":               "the number of SMS messages sent from a single mobile number within 30 seconds exceeds the upper limit",
	"FailedOperation.InsufficientBalanceInSmsPackage":          "The number of SMS messages in the package is insufficient.",
	"FailedOperation.PhoneNumberInBlacklist":                   "the mobile number is in the blocklist",
	"InternalError.Timeout":                                    "request timed out",
}

func (f *Tencent) fail(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	var ans provider.TencentAnswer
	ans.Response.Error = &provider.TencentError{Code: code, Message: tencentMessages[code]}
	ans.Response.RequestID = requestID()
	_ = json.NewEncoder(w).Encode(ans)
}

var tc3Auth = regexp.MustCompile(`^TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z]+)/tc3_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$`)

// requestLevel tells whether a scripted code refuses the whole request rather than the number.
func requestLevel(code string) bool {
	return strings.HasPrefix(code, "AuthFailure.") || code == "RequestLimitExceeded" || code == "InternalError"
}

var mainlandE164 = regexp.MustCompile(`^\+861[3-9]\d{9}$`)

func (f *Tencent) serve(w http.ResponseWriter, r *http.Request) {
	f.count()
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	m := tc3Auth.FindStringSubmatch(r.Header.Get("Authorization"))
	if r.Method != http.MethodPost || m == nil {
		f.fail(w, "AuthFailure.InvalidAuthorization")
		return
	}
	id, date, service, signedList, sig := m[1], m[2], m[3], strings.Split(m[4], ";"), m[5]
	if id != f.SecretID {
		f.fail(w, "AuthFailure.SecretIdNotFound")
		return
	}
	ts, err := strconv.ParseInt(r.Header.Get("X-TC-Timestamp"), 10, 64)
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	if err != nil || now().Sub(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		f.fail(w, "AuthFailure.SignatureExpire")
		return
	}
	headers := map[string]string{}
	for _, h := range signedList {
		if h == "host" {
			headers[h] = r.Host
		} else {
			headers[h] = r.Header.Get(h)
		}
	}
	canonical, _ := provider.TC3CanonicalRequest(headers, body)
	want := provider.TC3Signature(f.SecretKey, service, ts, canonical)
	if _, ok := headers["content-type"]; !ok || headers["host"] == "" || service != provider.TencentService ||
		date != time.Unix(ts, 0).UTC().Format("2006-01-02") || !hmac.Equal([]byte(sig), []byte(want)) {
		f.fail(w, "AuthFailure.SignatureFailure")
		return
	}
	switch {
	case r.Header.Get("X-TC-Action") != provider.TencentAction:
		f.fail(w, "InvalidAction")
		return
	case r.Header.Get("X-TC-Version") != provider.TencentVersion:
		f.fail(w, "NoSuchVersion")
		return
	case r.Header.Get("X-TC-Region") == "":
		f.fail(w, "MissingParameter")
		return
	}
	var req provider.TencentRequest
	if err := json.Unmarshal(body, &req); err != nil || len(req.PhoneNumberSet) == 0 {
		f.fail(w, "FailedOperation.FailResolvePacket")
		return
	}
	switch {
	case req.SmsSdkAppID != f.SdkAppID:
		f.fail(w, "InvalidParameterValue.SdkAppIdNotExist")
		return
	case req.SignName != f.SignName:
		f.fail(w, "FailedOperation.SignatureIncorrectOrUnapproved")
		return
	case req.TemplateID != f.TemplateID:
		f.fail(w, "FailedOperation.TemplateIncorrectOrUnapproved")
		return
	case len(req.TemplateParamSet) != f.Params:
		f.fail(w, "FailedOperation.TemplateParamSetNotMatchApprovedTemplate")
		return
	}
	var ans provider.TencentAnswer
	ans.Response.RequestID = requestID()
	for i, phone := range req.PhoneNumberSet {
		code := f.take(phone)
		if requestLevel(code) {
			f.fail(w, code)
			return
		}
		if code == "" && !mainlandE164.MatchString(phone) {
			code = "InvalidParameterValue.IncorrectPhoneNumber"
		}
		st := provider.TencentStatus{PhoneNumber: phone, SessionContext: req.SessionContext, IsoCode: "CN"}
		if code != "" {
			st.Code, st.Message = code, tencentMessages[code]
		} else {
			st.Code, st.Message, st.Fee = "Ok", "send success", 1
			st.SerialNo = fmt.Sprintf("2028:%d%03d", time.Now().UnixNano(), i)
			params := make(map[string]string, len(req.TemplateParamSet))
			for j, v := range req.TemplateParamSet {
				params[strconv.Itoa(j+1)] = v
			}
			f.add(Accepted{MessageID: req.SessionContext, Phone: phone, SignName: req.SignName, Template: req.TemplateID,
				Params: params, Ordered: append([]string(nil), req.TemplateParamSet...), ProviderID: st.SerialNo})
		}
		ans.Response.SendStatusSet = append(ans.Response.SendStatusSet, st)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(ans)
}
