package provider

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultAliyunEndpoint is dysmsapi's public endpoint.
const DefaultAliyunEndpoint = "https://dysmsapi.aliyuncs.com/"

// The API the aliyun provider calls: dysmsapi 2017-05-25 SendSms, RPC style, V3 signature.
const (
	AliyunAction  = "SendSms"
	AliyunVersion = "2017-05-25"
)

// Aliyun sends through Alibaba Cloud SMS (dysmsapi SendSms): the gateway renders the text from an
// approved template (TemplateCode) under an approved sign name, so Message.Text is not sent; the
// template's variables are filled from Message.Values as Params maps them. OutId is the message id.
type Aliyun struct {
	Endpoint        string // an http(s) URL; DefaultAliyunEndpoint in production
	AccessKeyID     string
	AccessKeySecret string // signs every request; never sent, logged or put in an error
	SignName        string
	TemplateCode    string
	Params          []TemplateParam
	Client          *http.Client
	// Now is the clock the x-acs-date comes from; time.Now when nil.
	Now func() time.Time
}

// Name is "aliyun".
func (*Aliyun) Name() string { return "aliyun" }

// AliyunPhone is the PhoneNumbers value of an E.164 phone: a mainland number without +86 (the API's
// own form), any other with its country code and no +.
func AliyunPhone(e164 string) string {
	if n, ok := strings.CutPrefix(e164, "+86"); ok {
		return n
	}
	return strings.TrimPrefix(e164, "+")
}

// AliyunAnswer is SendSms's answer (HTTP 200, also the body of the gateway's own errors).
type AliyunAnswer struct {
	Code      string `json:"Code"`
	Message   string `json:"Message"`
	BizID     string `json:"BizId,omitempty"`
	RequestID string `json:"RequestId"`
}

// maxAnswer bounds how much of a gateway's answer is read.
const maxAnswer = 64 << 10

// Send calls SendSms with PhoneNumbers, SignName, TemplateCode, TemplateParam (the mapped values as a
// JSON object) and OutId (the message id) in the query of a POST with an empty body, signed with
// ACS3-HMAC-SHA256. Code "OK" is acceptance (BizId, which SmsReport names, is the provider id); any other code is an *Error classified by
// AliyunClass. Errors name the gateway's code and message (masked), never the phone, the code, the
// query or a credential.
func (a *Aliyun) Send(ctx context.Context, m Message) (Accepted, error) {
	values, err := fill(a.Params, m)
	if err != nil {
		return Accepted{}, &Error{Provider: a.Name(), Class: Permanent, Code: "missing template value", Detail: err.Error()}
	}
	tp := make(map[string]string, len(values))
	for i, p := range a.Params {
		tp[p.Name] = values[i]
	}
	tpJSON, err := json.Marshal(tp)
	if err != nil {
		return Accepted{}, fmt.Errorf("aliyun: encode template parameters: %w", err)
	}
	query := url.Values{
		"PhoneNumbers":  {AliyunPhone(m.Phone)},
		"SignName":      {a.SignName},
		"TemplateCode":  {a.TemplateCode},
		"TemplateParam": {string(tpJSON)},
		"OutId":         {m.ID},
	}
	endpoint, err := url.Parse(a.Endpoint)
	if err != nil {
		return Accepted{}, fmt.Errorf("aliyun: the endpoint is not a URL")
	}
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce)
	payloadHash := sha256Hex(nil)
	headers := map[string]string{
		"host":                  endpoint.Host,
		"x-acs-action":          AliyunAction,
		"x-acs-version":         AliyunVersion,
		"x-acs-date":            ACS3Date(now()),
		"x-acs-signature-nonce": hex.EncodeToString(nonce),
		"x-acs-content-sha256":  payloadHash,
	}
	canonical, signed := ACS3CanonicalRequest(http.MethodPost, query, headers, payloadHash)
	u := *endpoint
	u.Path, u.RawQuery = "/", ACS3Query(query)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), http.NoBody)
	if err != nil {
		return Accepted{}, fmt.Errorf("aliyun: build request: %w", unwrapURLError(err))
	}
	for k, v := range headers {
		if k != "host" {
			req.Header.Set(k, v)
		}
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", ACS3Authorization(a.AccessKeyID, signed, ACS3Signature(a.AccessKeySecret, canonical)))
	resp, err := a.Client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, whose query holds the phone and the code: keep only the cause.
		return Accepted{}, fmt.Errorf("aliyun: request failed: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	var ans AliyunAnswer
	decodeErr := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&ans)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	switch {
	case resp.StatusCode == http.StatusOK && decodeErr == nil && ans.Code == "OK":
		return acceptedID(ans.BizID), nil
	case decodeErr != nil || ans.Code == "":
		// Not an answer of the API (a proxy's page, a cut body): nothing is known, retry.
		return Accepted{}, refusal(a.Name(), Transient, fmt.Sprintf("HTTP %d", resp.StatusCode), "")
	}
	return Accepted{}, refusal(a.Name(), AliyunClass(resp.StatusCode, ans.Code), ans.Code, ans.Message)
}

// aliyunCodes classifies dysmsapi's codes (Alibaba Cloud SMS "API error codes", help.aliyun.com
// document 101346, and the OpenAPI gateway's common errors). A code not listed is Transient,
// unless the gateway answered it with HTTP 4xx (a refusal of the request itself): then Account.
var aliyunCodes = map[string]Class{
	"isp.SYSTEM_ERROR":           Transient,
	"isp.GATEWAY_ERROR":          Transient,
	"Throttling":                 Transient, // the API's own QPS flow control
	"Throttling.User":            Transient,
	"Throttling.Api":             Transient,
	"ServiceUnavailable":         Transient,
	"InternalError":              Transient,
	"SignatureNonceUsed":         Transient,      // a nonce clash: a new request has a new one
	"isv.BUSINESS_LIMIT_CONTROL": PerNumberLimit, // per number: 1 a minute, 5 an hour, 10 a day by default

	"isv.AMOUNT_NOT_ENOUGH":             Account,
	"isv.OUT_OF_SERVICE":                Account,
	"isv.DAY_LIMIT_CONTROL":             Account, // the account's own daily total, set in the console
	"isv.MONTH_LIMIT_CONTROL":           Account,
	"isv.ACCOUNT_NOT_EXISTS":            Account,
	"isv.ACCOUNT_ABNORMAL":              Account,
	"isv.PRODUCT_UN_SUBSCRIPT":          Account,
	"isv.PRODUCT_UNSUBSCRIBE":           Account,
	"isp.RAM_PERMISSION_DENY":           Account,
	"isv.SMS_SIGNATURE_ILLEGAL":         Account,
	"isv.SMS_SIGN_ILLEGAL":              Account,
	"isv.SMS_TEMPLATE_ILLEGAL":          Account,
	"isv.SMS_SIGNATURE_SCENE_ILLEGAL":   Account,
	"isv.TEMPLATE_MISSING_PARAMETERS":   Account,
	"isv.TEMPLATE_PARAMS_ILLEGAL":       Account,
	"isv.INVALID_JSON_PARAM":            Account,
	"isv.INVALID_PARAMETERS":            Account,
	"isv.PARAM_LENGTH_LIMIT":            Account,
	"isv.SMS_CONTENT_ILLEGAL":           Account,
	"isv.BLACK_KEY_CONTROL_LIMIT":       Account,
	"isv.DENY_IP_RANGE":                 Account,
	"isv.EXTEND_CODE_ERROR":             Account,
	"isv.MOBILE_COUNT_OVER_LIMIT":       Account,
	"SignatureDoesNotMatch":             Account,
	"IncompleteSignature":               Account,
	"InvalidAccessKeyId.NotFound":       Account,
	"InvalidAccessKeyId.Inactive":       Account,
	"InvalidTimeStamp.Expired":          Account, // this host's clock is off
	"Forbidden.RAM":                     Account,
	"isv.MOBILE_NUMBER_ILLEGAL":         Permanent,
	"isv.DOMESTIC_NUMBER_NOT_SUPPORTED": Permanent,
	"isv.BLACKLIST_NUMBER":              Permanent,
}

// AliyunClass classifies an answer's code (and its HTTP status, for codes not listed).
func AliyunClass(status int, code string) Class {
	if c, ok := aliyunCodes[code]; ok {
		return c
	}
	if status >= 400 && status < 500 && status != http.StatusTooManyRequests {
		return Account
	}
	return Transient
}
