package page

import (
	"fmt"
	"time"
)

// Language is a page language: zh-CN (the default, as the MIIT portal) or en.
type Language string

// The page's languages.
const (
	Chinese Language = "zh-CN"
	English Language = "en"
)

// beijing is the time zone the page shows times in (China has one, without daylight saving).
var beijing = time.FixedZone("CST", 8*3600)

// texts are every visible string of one language; sentences are whole, never concatenated.
type texts struct {
	Title, Intro, TabVerify, TabResend, SwitchLang, SwitchLangName string
	Code, CodeHint, Phone, PhoneHint, IDTail, IDTailHint           string
	Captcha, CaptchaHint, CaptchaAlt, CaptchaNew, CaptchaAudio     string
	Submit, ResendIntro, VerifyIntro, AnswerHeading                string
	// Answers.
	Waiting, AllDone, Mismatch, Sent, SentLeft, ResendLimit, ResendTooSoon, NotPending string
	Undelivered                                                                        string
	PhoneLocked, TooMany, RateLimited, CaptchaWrong, BadForm, Unavailable, Disabled    string
	FieldCode, FieldPhone, FieldIDTail, FieldCaptcha                                   string
	// The page of an SMS link.
	LinkIntro, LinkPhoneHint, LinkDead, LinkDeadHint, LinkToPage string
	TimeFormat                                                   string
}

var catalog = map[Language]*texts{
	Chinese: {
		Title: "短信核验", Intro: "请使用工信部发送的短信验证码完成备案短信核验。",
		TabVerify: "短信核验", TabResend: "短信重发", SwitchLang: "English", SwitchLangName: "en",
		Code: "短信验证码", CodeHint: "请输入短信中的6位数字验证码",
		Phone: "手机号码", PhoneHint: "请输入主体负责人或网站负责人在备案信息中联系方式1的手机号码",
		IDTail: "证件号码后6位", IDTailHint: "请输入本次备案的个人证件号码后6位",
		Captcha: "图形验证码", CaptchaHint: "请输入图片中的6位数字", CaptchaAlt: "图形验证码：请输入图片中显示的6位数字，也可收听语音验证码",
		CaptchaNew: "看不清，换一张", CaptchaAudio: "收听语音验证码",
		Submit: "提交", VerifyIntro: "请填写短信验证码、手机号码和证件号码后6位，然后单击提交。",
		ResendIntro:   "如您未收到、遗忘或丢失了短信验证码，可在此重发短信。短信仅可重发2次。",
		AnswerHeading: "核验结果",
		Waiting:       "您的短信核验完成，请等待其他核验人进行短信核验",
		AllDone:       "您的短信核验已全部完成，该请求将提交管局审核",
		Mismatch:      "该条验证库里找不到记录或已完成验证",
		Sent:          "您的短信已发送成功",
		SentLeft:      "您的短信已发送成功，还可重发%d次。",
		ResendLimit:   "短信重发次数已达上限，请使用最近一次收到的验证码完成核验。",
		ResendTooSoon: "短信重发过于频繁，请于%s后再试。",
		NotPending:    "暂无待短信核验的备案申请，无需重发短信",
		Undelivered:   "上一条短信未能送达该手机号码。部分虚拟号段和新号段不支持接收工信部短信，如仍未收到，请更换手机号码后重新提交备案。",
		PhoneLocked:   "该手机号码核验失败次数过多，已暂时锁定，请稍后再试。",
		TooMany:       "核验失败次数过多，请于%s后再试。",
		RateLimited:   "操作过于频繁，请于%s后再试。",
		CaptchaWrong:  "图形验证码错误，请重新输入。",
		BadForm:       "请检查标出的字段后重新提交。",
		Unavailable:   "系统繁忙，请稍后再试。",
		Disabled:      "页面已过期，请刷新页面后重新提交。",
		FieldCode:     "验证码应为6位数字。", FieldPhone: "请输入正确的手机号码。",
		FieldIDTail: "请输入证件号码后6位。", FieldCaptcha: "请输入图片中的6位数字。",
		TimeFormat: "15:04:05（北京时间）",
		LinkIntro:  "请填写短信验证码和证件号码后6位，然后单击提交。", LinkPhoneHint: "接收本条核验短信的手机号码",
		LinkDead:     "链接已失效",
		LinkDeadHint: "您仍可在短信核验页面填写短信验证码、手机号码和证件号码后6位完成核验；如验证码已失效，可申请短信重发。",
		LinkToPage:   "前往短信核验页面",
	},
	English: {
		Title: "SMS verification", Intro: "Complete the ICP filing's SMS verification with the code the MIIT sent you.",
		TabVerify: "SMS verification", TabResend: "Resend SMS", SwitchLang: "中文", SwitchLangName: "zh-CN",
		Code: "SMS verification code", CodeHint: "The 6 digits in the text message",
		Phone: "Mobile phone number", PhoneHint: "Contact 1 of the subject's or the website's responsible person in the filing",
		IDTail: "Last 6 characters of the ID document number", IDTailHint: "Of the personal ID document used in this filing",
		Captcha: "Image code", CaptchaHint: "The 6 digits in the picture", CaptchaAlt: "Image code: type the 6 digits shown in this picture, or listen to the audio code",
		CaptchaNew: "New picture", CaptchaAudio: "Listen to the audio code",
		Submit: "Submit", VerifyIntro: "Fill in the SMS code, the phone number and the last 6 characters of your ID document number, then submit.",
		ResendIntro:   "If you did not receive the code, forgot or lost it, send it again here. The SMS can be resent twice.",
		AnswerHeading: "Result",
		Waiting:       "Your SMS verification is complete. Please wait for the other verifiers.",
		AllDone:       "All SMS verifications are complete; the filing will now be reviewed by the communications administration.",
		Mismatch:      "No pending verification matches these details, or it is already complete.",
		Sent:          "The SMS has been sent.",
		SentLeft:      "The SMS has been sent. It can be resent %d more time(s).",
		ResendLimit:   "The SMS cannot be resent again: use the latest code you received.",
		ResendTooSoon: "Too soon for another SMS: try again after %s.",
		NotPending:    "No filing awaits SMS verification for these details: there is nothing to resend.",
		Undelivered:   "The previous SMS did not reach this phone number. Some virtual and new number ranges cannot receive the MIIT's texts; if this one does not arrive either, change the phone number and submit the filing again.",
		PhoneLocked:   "Too many failed checks for this phone number: it is locked for now, try again later.",
		TooMany:       "Too many failed checks: try again after %s.",
		RateLimited:   "Too many requests: try again after %s.",
		CaptchaWrong:  "The image code is wrong: type the new one.",
		BadForm:       "Check the marked fields and submit again.",
		Unavailable:   "The system is busy: try again later.",
		Disabled:      "This page has expired: reload it and submit again.",
		FieldCode:     "The code is 6 digits.", FieldPhone: "Enter a valid mobile phone number.",
		FieldIDTail: "Enter the last 6 characters of the ID document number.", FieldCaptcha: "Enter the 6 digits of the picture.",
		TimeFormat:    "15:04:05 (Beijing time)",
		LinkIntro:     "Fill in the SMS code and the last 6 characters of your ID document number, then submit.",
		LinkPhoneHint: "The phone number this verification SMS was sent to",
		LinkDead:      "This link is no longer valid.",
		LinkDeadHint:  "You can still verify on the SMS verification page with the code, the phone number and the last 6 characters of your ID document number; if the code has expired, ask for a new SMS.",
		LinkToPage:    "Go to the SMS verification page",
	},
}

// at formats the instant now+d in the language's clock format (Beijing time), rounded up to the second.
func (t *texts) at(now time.Time, d time.Duration) string {
	return now.Add(d).Add(time.Second - 1).Truncate(time.Second).In(beijing).Format(t.TimeFormat)
}

func (t *texts) sentLeft(left int32) string {
	if left <= 0 {
		return t.Sent
	}
	return fmt.Sprintf(t.SentLeft, left)
}
