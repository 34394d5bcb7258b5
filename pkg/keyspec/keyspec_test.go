package keyspec

import (
	"encoding/hex"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	k32 := strings.Repeat("ab", 32)
	keys, err := Parse("seal", "s2:"+k32+", s1:"+strings.Repeat("cd", 32), 32, 32)
	if err != nil || len(keys) != 2 || keys[0].ID != "s2" || len(keys[0].Secret) != 32 {
		t.Fatalf("Parse = %v, %v", keys, err)
	}
	for spec, want := range map[string]string{
		"":                                    "no seal key given",
		"s1":                                  "want kid:hexkey",
		"bad id!:" + k32:                      "key id must be",
		"s1:" + k32 + ",s1:" + k32:            "appears twice",
		"s1:zz":                               "not hexadecimal",
		"s1:abcd":                             "want exactly 32 (64 hex digits)",
		"s1:" + k32 + strings.Repeat("ab", 2): "want exactly 32",
	} {
		if _, err := Parse("seal", spec, 32, 32); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) = %v, want %q", spec, err, want)
		} else if strings.Contains(err.Error(), "abab") {
			t.Errorf("Parse(%q) echoed key material: %v", spec, err)
		}
	}
	if _, err := Parse("hmac", "k1:"+strings.Repeat("ab", 16), 32, 0); err == nil || !strings.Contains(err.Error(), "need at least 32") {
		t.Errorf("a short hmac key: %v", err)
	}
	if _, err := Parse("hmac", "k1:"+strings.Repeat("ab", 64), 32, 0); err != nil {
		t.Errorf("a long hmac key: %v", err)
	}
}

func TestHasPlaceholder(t *testing.T) {
	example := hex.EncodeToString([]byte("example-seal-key-do-not-use-0000"))
	for spec, want := range map[string]bool{
		"s1:" + strings.Repeat("a", 64):                                  true,
		"s1:" + example:                                                  true,
		"s1:" + strings.Repeat("0f1e2d3c4b5a6978", 4):                    false,
		"s2:" + strings.Repeat("0f1e2d3c4b5a6978", 4) + ",s1:" + example: true,
	} {
		if got := HasPlaceholder(spec); got != want {
			t.Errorf("HasPlaceholder(%.20q…) = %v, want %v", spec, got, want)
		}
	}
}
