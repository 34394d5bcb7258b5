package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultTencentEndpoint is the SMS API's public endpoint; DefaultTencentRegion its default region.
const (
	DefaultTencentEndpoint = "https://sms.tencentcloudapi.com/"
	DefaultTencentRegion   = "ap-guangzhou"
)

// The API the tencent provider calls: SMS 2021-01-11 SendSms, TC3-HMAC-SHA256 signature.
const (
	TencentService = "sms"
	TencentAction  = "SendSms"
	TencentVersion = "2021-01-11"
	// TencentContentType is the body's type, signed as sent.
	TencentContentType = "application/json; charset=utf-8"
)

// Tencent sends through Tencent Cloud SMS (SendSms): the gateway renders the text from an approved
// template (TemplateID) under an approved sign name, so Message.Text is not sent; TemplateParamSet
// is Message.Values in the order Params gives. SessionContext is the message id.
type Tencent struct {
	Endpoint   string // an http(s) URL; DefaultTencentEndpoint in production
	Region     string
	SecretID   string
	SecretKey  string // signs every request; never sent, logged or put in an error
	SdkAppID   string
	SignName   string
	TemplateID string
	Params     []TemplateParam
	Client     *http.Client
	// Now is the clock the X-TC-Timestamp comes from; time.Now when nil.
	Now func() time.Time
}

// Name is "tencent".
func (*Tencent) Name() string { return "tencent" }

// TencentRequest is SendSms's body.
type TencentRequest struct {
	PhoneNumberSet   []string `json:"PhoneNumberSet"`
	SmsSdkAppID      string   `json:"SmsSdkAppId"`
	SignName         string   `json:"SignName"`
	TemplateID       string   `json:"TemplateId"`
	TemplateParamSet []string `json:"TemplateParamSet"`
	SessionContext   string   `json:"SessionContext"`
}

// TencentStatus is one number's outcome in SendStatusSet.
type TencentStatus struct {
	SerialNo       string `json:"SerialNo"`
	PhoneNumber    string `json:"PhoneNumber"`
	Fee            int    `json:"Fee"`
	SessionContext string `json:"SessionContext"`
	Code           string `json:"Code"`
	Message        string `json:"Message"`
	IsoCode        string `json:"IsoCode"`
}

// TencentError is the Error of an answer that refused the whole request.
type TencentError struct {
	Code    string `json:"Code"`
	Message string `json:"Message"`
}

// TencentAnswer is SendSms's answer (always HTTP 200).
type TencentAnswer struct {
	Response struct {
		SendStatusSet []TencentStatus `json:"SendStatusSet,omitempty"`
		Error         *TencentError   `json:"Error,omitempty"`
		RequestID     string          `json:"RequestId"`
	} `json:"Response"`
}

// Send calls SendSms for one number (PhoneNumberSet [E.164]); the call is TC3-HMAC-SHA256 signed
// over content-type, host and x-tc-action. The number's SendStatusSet entry with Code "Ok" is
// acceptance (its SerialNo, the sid of the status callback, is the provider id); a request-level Error or the number's other code is an *Error classified by
// TencentClass. Errors name the gateway's code and message (masked), never the phone, the code
// or a credential.
func (t *Tencent) Send(ctx context.Context, m Message) (Accepted, error) {
	values, err := fill(t.Params, m)
	if err != nil {
		return Accepted{}, &Error{Provider: t.Name(), Class: Permanent, Code: "missing template value", Detail: err.Error()}
	}
	payload, err := json.Marshal(TencentRequest{
		PhoneNumberSet: []string{m.Phone}, SmsSdkAppID: t.SdkAppID, SignName: t.SignName,
		TemplateID: t.TemplateID, TemplateParamSet: values, SessionContext: m.ID,
	})
	if err != nil {
		return Accepted{}, fmt.Errorf("tencent: encode: %w", err)
	}
	endpoint, err := url.Parse(t.Endpoint)
	if err != nil {
		return Accepted{}, fmt.Errorf("tencent: the endpoint is not a URL")
	}
	now := time.Now
	if t.Now != nil {
		now = t.Now
	}
	ts := now().Unix()
	canonical, signed := TC3CanonicalRequest(map[string]string{
		"content-type": TencentContentType, "host": endpoint.Host, "x-tc-action": TencentAction,
	}, payload)
	u := *endpoint
	u.Path, u.RawQuery = "/", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(payload))
	if err != nil {
		return Accepted{}, fmt.Errorf("tencent: build request: %w", unwrapURLError(err))
	}
	req.Header.Set("Content-Type", TencentContentType)
	req.Header.Set("X-TC-Action", TencentAction)
	req.Header.Set("X-TC-Version", TencentVersion)
	req.Header.Set("X-TC-Timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("X-TC-Region", t.Region)
	req.Header.Set("Authorization", TC3Authorization(t.SecretID, TencentService, ts, signed,
		TC3Signature(t.SecretKey, TencentService, ts, canonical)))
	resp, err := t.Client.Do(req)
	if err != nil {
		return Accepted{}, fmt.Errorf("tencent: request failed: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	var ans TencentAnswer
	decodeErr := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer)).Decode(&ans)
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode != http.StatusOK || decodeErr != nil {
		return Accepted{}, refusal(t.Name(), Transient, fmt.Sprintf("HTTP %d", resp.StatusCode), "")
	}
	if e := ans.Response.Error; e != nil {
		return Accepted{}, refusal(t.Name(), TencentClass(e.Code), e.Code, e.Message)
	}
	for _, st := range ans.Response.SendStatusSet {
		if st.PhoneNumber != m.Phone && len(ans.Response.SendStatusSet) > 1 {
			continue
		}
		if strings.EqualFold(st.Code, "Ok") {
			return acceptedID(st.SerialNo), nil
		}
		return Accepted{}, refusal(t.Name(), TencentClass(st.Code), st.Code, st.Message)
	}
	return Accepted{}, refusal(t.Name(), Transient, "no status for the number", "")
}

// tencentCodes classifies SendSms's codes, request-level and per number (Tencent Cloud SMS "Error
// Codes", cloud.tencent.com/document/api/382/59177, and the API 3.0 common errors). Codes not
// listed are classified by their prefix (tencentPrefixes), else Transient.
var tencentCodes = map[string]Class{
	"LimitExceeded.PhoneNumberCountLimit":             Account, // more numbers than one request takes
	"LimitExceeded.PhoneNumberDailyLimit":             PerNumberLimit,
	"LimitExceeded.PhoneNumberOneHourLimit":           PerNumberLimit,
	"LimitExceeded.PhoneNumberThirtySecondLimit":      PerNumberLimit,
	"LimitExceeded.PhoneNumberSameContentDailyLimit":  PerNumberLimit,
	"LimitExceeded.DeliveryFrequencyLimit":            PerNumberLimit,
	"LimitExceeded.AppDailyLimit":                     Account,
	"LimitExceeded.DailyLimit":                        Account,
	"LimitExceeded.AppCountryOrRegionDailyLimit":      Account,
	"RequestLimitExceeded":                            Transient, // the API's own rate limit
	"InvalidAction":                                   Account,
	"NoSuchVersion":                                   Account,
	"InvalidParameterValue.IncorrectPhoneNumber":      Permanent,
	"FailedOperation.PhoneNumberInBlacklist":          Permanent,
	"FailedOperation.PhoneNumberParseFail":            Permanent,
	"UnsupportedOperation.UnsupportedRegion":          Permanent, // the number's country is not served
	"FailedOperation.InsufficientBalanceInSmsPackage": Account,
	"AuthFailure.SignatureExpire":                     Account, // this host's clock is off
	"InternalError.Timeout":                           Transient,
	"InternalError.OtherError":                        Transient,
}

var tencentPrefixes = []struct {
	prefix string
	class  Class
}{
	{"AuthFailure.", Account},
	{"UnauthorizedOperation.", Account},
	{"FailedOperation.", Account},
	{"InvalidParameterValue.", Account},
	{"InvalidParameter.", Account},
	{"MissingParameter.", Account},
	{"UnsupportedOperation.", Account},
	{"InternalError.", Transient},
	{"LimitExceeded.", Account},
}

// TencentClass classifies a code.
func TencentClass(code string) Class {
	if c, ok := tencentCodes[code]; ok {
		return c
	}
	for _, p := range tencentPrefixes {
		if strings.HasPrefix(code, p.prefix) {
			return p.class
		}
	}
	return Transient
}
