package iddoc

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		typ    Type
		number string
		ok     bool
	}{
		{"resident id valid", ResidentIDCard, "11010519491231002X", true},
		{"resident id lower-case x", ResidentIDCard, "11010519491231002x", true},
		{"resident id with spaces", ResidentIDCard, "110105 19491231 002X", true},
		{"resident id valid digit check", ResidentIDCard, "440524188001010014", true},
		{"resident id wrong check digit", ResidentIDCard, "110105194912310021", false},
		{"resident id 17 chars", ResidentIDCard, "11010519491231002", false},
		{"resident id bad date", ResidentIDCard, "110105194913310028", false},
		{"resident id letters", ResidentIDCard, "1101051949123100AX", false},
		{"passport", Passport, "E12345678", true},
		{"passport too short", Passport, "E123", false},
		{"hk macao permit", HKMacaoPermit, "H12345678", true},
		{"hk macao permit old", HKMacaoPermit, "M1234567890", true},
		{"hk macao permit wrong letter", HKMacaoPermit, "X12345678", false},
		{"taiwan permit", TaiwanPermit, "12345678", true},
		{"taiwan permit letters", TaiwanPermit, "A1234567", false},
		{"foreign permanent resident 2017", ForeignPermanentResidentID, "USA110079082101", true},
		{"foreign permanent resident 2023", ForeignPermanentResidentID, "933111197001010014", true},
		{"foreign permanent resident bad", ForeignPermanentResidentID, "12345", false},
		{"other", Other, "AB-123456", true},
		{"other too short", Other, "AB1", false},
		{"empty", Passport, "  ", false},
		{"unknown type", Type(99), "E12345678", false},
	}
	for _, tt := range tests {
		err := Validate("id_number", tt.typ, tt.number)
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate(%q) = %v, want ok=%v", tt.name, tt.number, err, tt.ok)
		}
	}
}

func TestTail(t *testing.T) {
	t.Parallel()
	if got := Tail("11010519491231002x"); got != "31002X" {
		t.Errorf("Tail = %q, want 31002X", got)
	}
	if got := Tail("Ａ１２３４５６（７）"); got != "456(7)" {
		t.Errorf("Tail of a full-width Hong Kong identity card number = %q, want 456(7)", got)
	}
	for in, want := range map[string]string{" 31002x ": "31002X", "31 002X": "31002X", "31002X": "31002X",
		// typed with a Chinese input method: full-width digits and letters, the ideographic space,
		// a Hong Kong identity card's full-width brackets
		"３１００２ｘ": "31002X", "31\u3000002X": "31002X", "567（8）": "567(8)", "567(8)": "567(8)"} {
		got, err := NormalizeTail("id_tail", in)
		if err != nil || got != want {
			t.Errorf("NormalizeTail(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "12345", "1234567", "12345!", "１２３４５！", "31002X" + strings.Repeat(" ", maxTailInput)} {
		if _, err := NormalizeTail("id_tail", bad); err == nil {
			t.Errorf("NormalizeTail(%q) accepted", bad)
		}
	}
}

func TestCleanHKMacaoID(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"A123456(3)": "A123456(3)", "a1234563": "A123456(3)", "Ａ１２３４５６（３）": "A123456(3)", " A 123456 (3) ": "A123456(3)",
		"A004567(8)": "A004567(8)", "Ａ００４５６７（８）": "A004567(8)", "AB987654(3)": "AB987654(3)",
		"1234567(8)": "1234567(8)", "12345678": "1234567(8)", "５２３４５６７（８）": "5234567(8)",
	} {
		got, err := CleanHKMacaoID("hk", in)
		if err != nil || got != want {
			t.Errorf("CleanHKMacaoID(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// The tail a Zhejiang verifier types, with the brackets, as in the portal's example 567（8）.
	if n, _ := CleanHKMacaoID("hk", "A004567(8)"); Tail(n) != "567(8)" {
		t.Errorf("Tail(%q) = %q, want 567(8)", n, Tail(n))
	}
	for _, bad := range []string{"", "A123456(4)", "A12345(3)", "1234567(A)", "2234567(8)", "H12345678", "ABC123456(7)", "A123456((3))"} {
		if _, err := CleanHKMacaoID("hk", bad); err == nil {
			t.Errorf("CleanHKMacaoID(%q) accepted", bad)
		}
	}
}
