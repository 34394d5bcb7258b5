package domain

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/phone"
)

// mobile returns the i-th of many distinct valid mainland mobile numbers.
func mobile(i int) string { return fmt.Sprintf("+86138%08d", i) }

// websites returns n websites with a person each; distinct phones make n verifiers on a first filing.
func websites(n int, distinctPhones bool) []Website {
	out := make([]Website, n)
	for i := range out {
		ph := mobile(0)
		if distinctPhones {
			ph = mobile(i + 1)
		}
		out[i] = Website{Kind: KindWebsite, Domain: fmt.Sprintf("site%d.cn", i), Person: person("李四", idB, ph)}
	}
	return out
}

func wantInvalid(t *testing.T, err error, field, reason string) *errs.Error {
	t.Helper()
	var de *errs.Error
	if !errors.As(err, &de) || de.Kind != errs.KindInvalidArgument || de.Field != field || de.Reason != reason || de.Message == "" {
		t.Fatalf("err = %#v, want InvalidArgument field %q reason %q", err, field, reason)
	}
	return de
}

// TestWebsiteAndVerifierCounts: the default limits (50 websites, 20 verifiers) and configured ones;
// websites sharing a phone are one verifier, so they do not count twice.
func TestWebsiteAndVerifierCounts(t *testing.T) {
	first := func(ws []Website) Spec {
		return Spec{FilingType: FirstFiling, Principal: person("张三", idA, mobile(0)), Websites: ws}
	}
	// Limits hold: 50 websites on one phone (one verifier with the principal), 19 websites with
	// phones of their own plus the principal: 20 verifiers.
	mustNormalize(t, Rules{}, first(websites(DefaultMaxWebsites, false)))
	if v := (Rules{}).Verifiers(mustNormalize(t, Rules{}, first(websites(DefaultMaxVerifiers-1, true)))); len(v) != DefaultMaxVerifiers {
		t.Fatalf("%d verifiers, want %d", len(v), DefaultMaxVerifiers)
	}

	_, err := Rules{}.Normalize(first(websites(DefaultMaxWebsites+1, false)))
	if de := wantInvalid(t, err, "spec.websites", ReasonTooManyWebsites); !strings.Contains(de.Message, "50") {
		t.Fatalf("message %q does not name the limit", de.Message)
	}
	// The 21st distinct phone (the principal is the first) is named.
	_, err = Rules{}.Normalize(first(websites(DefaultMaxVerifiers, true)))
	wantInvalid(t, err, fmt.Sprintf("spec.websites[%d].person.phone", DefaultMaxVerifiers-1), ReasonTooManyVerifiers)

	small := Rules{MaxWebsites: 3, MaxVerifiers: 2}
	_, err = small.Normalize(first(websites(4, false)))
	wantInvalid(t, err, "spec.websites", ReasonTooManyWebsites)
	_, err = small.Normalize(first(websites(2, true)))
	wantInvalid(t, err, "spec.websites[1].person.phone", ReasonTooManyVerifiers)
	// Websites that do not verify (a remarks-only change) do not count as verifiers.
	change := Spec{FilingType: ChangeFiling, SubjectID: "sub_1", Websites: websites(3, true)}
	if _, err := small.Normalize(change); err != nil {
		t.Fatalf("remarks-only change of 3 websites: %v", err)
	}

	// SubmitOrder applies the limits to the stored spec (the rules may have been lowered since).
	o := Order{ID: "ord_1", State: StateDraft, Spec: mustNormalize(t, Rules{}, first(websites(3, true)))}
	_, err = small.PlanSubmit(o, time.Now(), time.Hour, Access{}, nil)
	var de *errs.Error
	if !errors.As(err, &de) || de.Kind != errs.KindFailedPrecondition || de.Reason != ReasonOrderInvalid || !strings.Contains(de.Message, ReasonTooManyVerifiers) {
		t.Fatalf("submit over the lowered limit: %#v", err)
	}

	if err := (Rules{MaxWebsites: 50, MaxVerifiers: 20}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Rules{{MaxWebsites: 0, MaxVerifiers: 20}, {MaxWebsites: CeilingMaxWebsites + 1, MaxVerifiers: 20},
		{MaxWebsites: 50, MaxVerifiers: CeilingMaxVerifiers + 1}, {MaxWebsites: 50, MaxVerifiers: -1}} {
		if r.Validate() == nil {
			t.Errorf("%+v validated", r)
		}
	}
}

// TestPhoneCountries: a valid foreign mobile number is refused by default with a reason naming the
// allowed codes, and accepted when its code is configured; the emergency phone follows the rule too.
func TestPhoneCountries(t *testing.T) {
	hk := "+852 5123 4567"
	spec := func(ph, emergency string) Spec {
		p := person("张三", idA, ph)
		p.EmergencyPhone = emergency
		return Spec{FilingType: FirstFiling, Principal: p, Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Person: person("李四", idB, "13912345678")}}}
	}
	_, err := Rules{}.Normalize(spec(hk, ""))
	if de := wantInvalid(t, err, "spec.principal.phone", phone.ReasonCountryNotAllowed); !strings.Contains(de.Message, "+86") {
		t.Fatalf("message %q does not name the allowed codes", de.Message)
	}
	_, err = Rules{}.Normalize(spec("13812345678", hk))
	wantInvalid(t, err, "spec.principal.emergency_phone", phone.ReasonCountryNotAllowed)

	countries, err := phone.ParseCountries("86,852")
	if err != nil {
		t.Fatal(err)
	}
	s := mustNormalize(t, Rules{PhoneCountries: countries}, spec(hk, hk))
	if s.Principal.Phone != "+85251234567" {
		t.Fatalf("phone = %q", s.Principal.Phone)
	}
}

func TestTextLimits(t *testing.T) {
	base := func() Spec {
		return Spec{FilingType: FirstFiling, SubjectName: "示例公司", Principal: person("张三", idA, "13812345678"),
			Websites: []Website{{Kind: KindWebsite, Domain: "a.cn", Name: "示例网站", Person: person("李四", idB, "13912345678")}}}
	}
	tests := []struct {
		name          string
		edit          func(s *Spec)
		field, reason string
	}{
		{"subject name", func(s *Spec) { s.SubjectName = strings.Repeat("公", MaxSubjectNameLength+1) }, "spec.subject_name", ReasonTextTooLong},
		{"person name", func(s *Spec) { s.Principal.Name = strings.Repeat("张", MaxPersonNameLength+1) }, "spec.principal.name", ReasonTextTooLong},
		{"website name", func(s *Spec) { s.Websites[0].Name = strings.Repeat("x", MaxWebsiteNameLength+1) }, "spec.websites[0].name", ReasonTextTooLong},
		{"website person name", func(s *Spec) { s.Websites[0].Person.Name = strings.Repeat("李", MaxPersonNameLength+1) },
			"spec.websites[0].person.name", ReasonTextTooLong},
		{"subject id", func(s *Spec) { s.FilingType, s.SubjectID = AddAccess, "sub_"+strings.Repeat("0", MaxSubjectIDLength) },
			"spec.subject_id", ReasonInvalidSubjectID},
		{"id number", func(s *Spec) { s.Principal.IDNumber = idA + strings.Repeat(" ", MaxIDNumberLength) }, "spec.principal.id_number",
			iddoc.ReasonInvalidIDNumber},
		{"phone", func(s *Spec) { s.Principal.Phone = "138" + strings.Repeat("-", phone.MaxInputLength) + "12345678" }, "spec.principal.phone",
			phone.ReasonInvalidPhone},
		{"newline in a name", func(s *Spec) { s.Principal.Name = "张\n三" }, "spec.principal.name", ReasonInvalidCharacters},
		{"NUL in a subject name", func(s *Spec) { s.SubjectName = "示例\x00公司" }, "spec.subject_name", ReasonInvalidCharacters},
		{"bidi override in a website name", func(s *Spec) { s.Websites[0].Name = "abc\u202Eexe.txt" }, "spec.websites[0].name", ReasonInvalidCharacters},
		{"zero-width space", func(s *Spec) { s.Principal.Name = "张\u200B三" }, "spec.principal.name", ReasonInvalidCharacters},
		{"invalid UTF-8", func(s *Spec) { s.SubjectName = "\xff公司" }, "spec.subject_name", ReasonInvalidCharacters},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base()
			tt.edit(&s)
			_, err := Rules{}.Normalize(s)
			wantInvalid(t, err, tt.field, tt.reason)
		})
	}
	// At the limits, and a name in decomposed form, which is stored composed (NFC).
	s := base()
	s.SubjectName = strings.Repeat("公", MaxSubjectNameLength)
	s.Principal.Name = strings.Repeat("张", MaxPersonNameLength-1) + "e\u0301"
	s.Websites[0].Name = strings.Repeat("x", MaxWebsiteNameLength)
	n := mustNormalize(t, Rules{}, s)
	if !strings.HasSuffix(n.Principal.Name, "\u00e9") {
		t.Fatalf("name not in NFC: %q", n.Principal.Name)
	}
}

func TestDomains(t *testing.T) {
	long := func(labels, size int) string {
		parts := make([]string, labels)
		for i := range parts {
			parts[i] = strings.Repeat("a", size)
		}
		return strings.Join(parts, ".")
	}
	valid := map[string]string{
		"example.cn":                   "example.cn",
		" WWW.Example.COM. ":           "www.example.com",
		"ｅｘａｍｐｌｅ。ｃｎ":                   "example.cn", // full-width letters and ideographic full stop
		"例子.中国":                        "例子.中国",
		"xn--fsqu00a.xn--fiqs8s":       "例子.中国", // punycode is the same domain
		"a-b.c-d.cn":                   "a-b.c-d.cn",
		"123.com":                      "123.com",
		long(3, 63) + ".cn":            long(3, 63) + ".cn",            // 195 characters
		long(4, 62) + "." + long(1, 1): long(4, 62) + "." + long(1, 1), // 253 characters
	}
	for in, want := range valid {
		got, err := normalizeDomain("d", in)
		if err != nil || got != want {
			t.Errorf("normalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	invalid := []string{
		"localhost", "cn", "a..cn", ".a.cn", "-a.cn", "a-.cn", "a_b.cn", "a b.cn", "a/b.cn", "a.cn:80", "http://a.cn",
		"a.cn/path", "<script>.cn", "a\".cn", "a'.cn", "a\x00b.cn", "a\nb.cn", "a\u202eb.cn", "192.168.1.1",
		long(1, 64) + ".cn", long(4, 62) + "." + long(1, 2), strings.Repeat("a.", 600) + "cn", "xn--zz.cn", "a.cn..",
	}
	for _, in := range invalid {
		if got, err := normalizeDomain("d", in); errs.Reason(err) != ReasonInvalidDomain {
			t.Errorf("normalizeDomain(%q) = %q, %v; want %s", in, got, err, ReasonInvalidDomain)
		}
	}
	// Two spellings of one domain are a duplicate.
	_, err := Rules{}.Normalize(Spec{FilingType: FirstFiling, Principal: person("张三", idA, "13812345678"),
		Websites: []Website{{Kind: KindWebsite, Domain: "例子.中国", Person: person("张三", idA, "13812345678")},
			{Kind: KindWebsite, Domain: "XN--FSQU00A.xn--fiqs8s", Person: person("张三", idA, "13812345678")}}})
	wantInvalid(t, err, "spec.websites[1].domain", ReasonDuplicateDomain)
}
