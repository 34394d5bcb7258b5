package domain

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

func TestSegments(t *testing.T) {
	for _, tc := range []struct {
		text string
		want int
	}{
		{strings.Repeat("a", 160), 1}, {strings.Repeat("a", 161), 2}, {strings.Repeat("a", 306), 2}, {strings.Repeat("a", 307), 3},
		{strings.Repeat("{", 80), 1}, {strings.Repeat("{", 81), 2}, // extension characters take two septets
		{strings.Repeat("核", 70), 1}, {strings.Repeat("核", 71), 2}, {strings.Repeat("核", 134), 2}, {strings.Repeat("核", 135), 3},
		{strings.Repeat("a", 69) + "核", 1}, {strings.Repeat("a", 100) + "核", 2}, // one Chinese character makes the whole text UCS-2
		{"", 1},
	} {
		if got := Segments(tc.text); got != tc.want {
			t.Errorf("Segments(%d runes of %q) = %d, want %d", len([]rune(tc.text)), tc.text[:1], got, tc.want)
		}
	}
}

// The longest link verification sends (MaxLinkLength: its longest base, https://beian.example.gov.cn/
// and a 22-character token) fits in two segments with the code and deadline, in both languages.
func TestRenderLinkFitsTwoSegments(t *testing.T) {
	deadline := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	longest := "https://beian-verify.example.gov.cn/verif/" + strings.Repeat("A", 22)
	if len(longest) != MaxLinkLength {
		t.Fatalf("test link is %d characters, want %d", len(longest), MaxLinkLength)
	}
	params := map[string]string{ParamCode: "123456", ParamLink: longest}
	zh, err := Render(TemplateVerificationCode, LocaleZhCN, "", params, deadline)
	if err != nil {
		t.Fatal(err)
	}
	want := "【ICP备案】您的短信核验码为123456，请于2026-11-27 10:00前登录备案管理系统完成核验。核验链接：" + longest
	if zh != want {
		t.Fatalf("zh text\n got %s\nwant %s", zh, want)
	}
	if n := len([]rune(zh)); Segments(zh) != 2 || n > 134 {
		t.Fatalf("zh text with the longest link: %d characters, %d segments", n, Segments(zh))
	}
	en, err := Render(TemplateVerificationCode, LocaleEn, "", params, deadline)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(en, "(UTC+8). Verify at "+longest) || Segments(en) != 2 {
		t.Fatalf("en text %q: %d segments", en, Segments(en))
	}
	// Without a link: today's text, byte for byte.
	plain, _ := Render(TemplateVerificationCode, LocaleZhCN, "", map[string]string{ParamCode: "123456"}, deadline)
	if plain != "【ICP备案】您的短信核验码为123456，请于2026-11-27 10:00前登录备案管理系统完成核验。" {
		t.Fatalf("text without a link changed: %s", plain)
	}
	if err := CheckSignature(DefaultSignature); err != nil {
		t.Fatalf("default signature: %v", err)
	}
	// The slack a longer signature has: 11 more characters fit, 12 do not.
	if err := CheckSignature(DefaultSignature + strings.Repeat("号", 11)); err != nil {
		t.Errorf("a 16-character signature should fit: %v", err)
	}
	if err := CheckSignature(DefaultSignature + strings.Repeat("号", 12)); err == nil {
		t.Error("a 17-character signature leaves no room for the longest link: want an error")
	}
}

func TestRenderRefusesOverflowAndBadLinks(t *testing.T) {
	deadline := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	render := func(link string) error {
		_, err := Render(TemplateVerificationCode, LocaleZhCN, "", map[string]string{ParamCode: "123456", ParamLink: link}, deadline)
		return err
	}
	var e *errs.Error
	if err := render("https://" + strings.Repeat("a", 72)); !errors.As(err, &e) || e.Reason != ReasonMessageTooLong || e.Field != "params.link" {
		t.Errorf("80-character link: got %v, want %s on params.link", err, ReasonMessageTooLong)
	}
	for _, bad := range []string{"", "ftp://x.cn/a", "javascript:alert(1)", "https://x.cn/a b", "https://例子.cn/a", "https://x.cn/\n"} {
		if err := render(bad); errs.Reason(err) != ReasonInvalidParam {
			t.Errorf("link %q: got %v, want %s", bad, err, ReasonInvalidParam)
		}
	}
	v := TemplateValues(map[string]string{ParamCode: "123456", ParamLink: "https://x.cn/v/t"}, deadline)
	if v[ParamLink] != "https://x.cn/v/t" {
		t.Errorf("template values %v lack the link", v)
	}
	if _, ok := TemplateValues(map[string]string{ParamCode: "123456"}, deadline)[ParamLink]; ok {
		t.Error("a message without a link has no link value")
	}
}
