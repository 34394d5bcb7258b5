package domain

import (
	"testing"
	"time"
)

// A templated provider gets the code and the deadline exactly as the text shows them.
func TestTemplateValues(t *testing.T) {
	expire := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	v := TemplateValues(map[string]string{ParamCode: "482913"}, expire)
	if v[ParamCode] != "482913" || v[ParamDeadline] != "2026-11-27 10:00" || len(v) != 2 {
		t.Fatalf("values %v", v)
	}
	text, err := Render(TemplateVerificationCode, LocaleZhCN, "", map[string]string{ParamCode: "482913"}, expire)
	if err != nil || text != "【ICP备案】您的短信核验码为482913，请于2026-11-27 10:00前登录备案管理系统完成核验。" {
		t.Fatalf("text %q, %v", text, err)
	}
	// params.deadline wins over the expiry, as in the text.
	v = TemplateValues(map[string]string{ParamCode: "482913", ParamDeadline: "2026-11-28T00:30:00Z"}, expire)
	if v[ParamDeadline] != "2026-11-28 08:30" {
		t.Fatalf("values %v", v)
	}
	if v := TemplateValues(map[string]string{}, time.Time{}); len(v) != 0 {
		t.Fatalf("a wiped message has values %v", v)
	}
}
