package domain

import (
	"fmt"
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
	// With params.link (verification's --verify-link-base): the same words, then the link, last, so
	// no punctuation sticks to it where a phone makes it clickable.
	linkZh = "核验链接：{link}"
	linkEn = " Verify at {link}"
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
	link, hasLink := params[ParamLink]
	if hasLink {
		if err := checkLink(link); err != nil {
			return "", err
		}
	}
	tmpl, linkTmpl := verificationZh, linkZh
	if locale == LocaleEn {
		tmpl, linkTmpl = verificationEn, linkEn
	}
	if hasLink {
		tmpl += linkTmpl
	}
	text := strings.NewReplacer(
		"{signature}", signature,
		"{code}", code,
		"{deadline}", deadline.In(CST).Format(DeadlineLayout),
		"{link}", link,
	).Replace(tmpl)
	if n := Segments(text); hasLink && n > MaxSegments {
		return "", errs.Invalid("params.link", ReasonMessageTooLong,
			"with this link the text needs %d SMS segments; at most %d: use a shorter link base", n, MaxSegments)
	}
	return text, nil
}

// checkLink checks params.link: an absolute http(s) URL of printable ASCII. Its length is bounded
// by the segments the whole text takes.
func checkLink(link string) error {
	bad := func() error {
		return errs.Invalid("params.link", ReasonInvalidParam, "params.link is an http(s) URL of printable ASCII characters")
	}
	if !(strings.HasPrefix(link, "https://") || strings.HasPrefix(link, "http://")) {
		return bad()
	}
	for _, c := range []byte(link) {
		if c <= ' ' || c > '~' {
			return bad()
		}
	}
	return nil
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
// (aliyun, tencent) fills in, by name: ParamCode, ParamLink when the message has one, and ParamDeadline as Render's text shows it (UTC+8,
// DeadlineLayout). A value the message lacks is absent.
func TemplateValues(params map[string]string, expireAt time.Time) map[string]string {
	v := map[string]string{}
	if c := params[ParamCode]; c != "" {
		v[ParamCode] = c
	}
	if d, err := deadlineOf(params, expireAt); err == nil && !d.IsZero() {
		v[ParamDeadline] = d.In(CST).Format(DeadlineLayout)
	}
	if l := params[ParamLink]; l != "" {
		v[ParamLink] = l
	}
	return v
}

// CheckSignature tells whether a text with the longest link verification sends (MaxLinkLength)
// fits in MaxSegments behind signature, in both locales: sms-dispatch refuses to start otherwise,
// rather than refuse every message with a link.
func CheckSignature(signature string) error {
	link := "https://" + strings.Repeat("a", MaxLinkLength-len("https://"))
	for _, locale := range []string{LocaleZhCN, LocaleEn} {
		_, err := Render(TemplateVerificationCode, locale, signature,
			map[string]string{ParamCode: "123456", ParamLink: link}, time.Date(2026, 11, 27, 10, 0, 0, 0, CST))
		if err != nil {
			return fmt.Errorf("--sms-signature %q: a text with a verification link of %d characters would not fit in %d SMS segments; shorten the signature",
				signature, MaxLinkLength, MaxSegments)
		}
	}
	return nil
}
