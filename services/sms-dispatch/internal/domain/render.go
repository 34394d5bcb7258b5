package domain

import (
	"strings"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// CST is mainland China time (UTC+8, no daylight saving); deadlines are shown in it.
var CST = time.FixedZone("CST", 8*3600)

// DeadlineLayout is how a deadline appears in a message.
const DeadlineLayout = "2006-01-02 15:04"

// DefaultSignature is the 【signature】 of the zh-CN text.
const DefaultSignature = "ICP备案"

const (
	verificationZh = "【{signature}】您的短信核验码为{code}，请于{deadline}前登录备案管理系统完成核验。"
	verificationEn = "[ICP Filing] Your SMS verification code is {code}. Complete verification in the filing system before {deadline} (UTC+8)."
)

// Render returns the text of a message. The deadline comes from params["deadline"] (RFC 3339) when
// given, else from expireAt; it is shown in UTC+8 as "2006-01-02 15:04".
func Render(t Template, locale, signature string, params map[string]string, expireAt time.Time) (string, error) {
	if t != TemplateVerificationCode {
		return "", errs.Invalid("template", ReasonInvalidTemplate, "unknown template")
	}
	code := params[ParamCode]
	if code == "" {
		return "", errs.Invalid("params.code", ReasonMissingParam, "the verification code template needs params.code")
	}
	if !isCode(code) {
		return "", errs.Invalid("params.code", ReasonInvalidParam, "params.code must be 6 digits")
	}
	deadline, err := deadlineOf(params, expireAt)
	if err != nil {
		return "", err
	}
	if deadline.IsZero() {
		return "", errs.Invalid("params.deadline", ReasonMissingParam, "a deadline is required (params.deadline or expire_time)")
	}
	if signature == "" {
		signature = DefaultSignature
	}
	tmpl := verificationZh
	if locale == LocaleEn {
		tmpl = verificationEn
	}
	return strings.NewReplacer(
		"{signature}", signature,
		"{code}", code,
		"{deadline}", deadline.In(CST).Format(DeadlineLayout),
	).Replace(tmpl), nil
}

// isCode tells whether s is a verification code: exactly 6 ASCII digits.
func isCode(s string) bool {
	if len(s) != 6 {
		return false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// deadlineOf is the deadline a text shows: params["deadline"] (RFC 3339) when given, else expireAt.
func deadlineOf(params map[string]string, expireAt time.Time) (time.Time, error) {
	s, ok := params[ParamDeadline]
	if !ok || s == "" {
		return expireAt, nil
	}
	d, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, errs.Invalid("params.deadline", ReasonInvalidParam, "params.deadline must be an RFC 3339 time")
	}
	return d, nil
}

// TemplateValues are the values of a stored message that a provider rendering its own template
// (aliyun, tencent) fills in, by name: ParamCode, and ParamDeadline as Render's text shows it (UTC+8,
// DeadlineLayout). A value the message lacks is absent.
func TemplateValues(params map[string]string, expireAt time.Time) map[string]string {
	v := map[string]string{}
	if c := params[ParamCode]; c != "" {
		v[ParamCode] = c
	}
	if d, err := deadlineOf(params, expireAt); err == nil && !d.IsZero() {
		v[ParamDeadline] = d.In(CST).Format(DeadlineLayout)
	}
	return v
}
