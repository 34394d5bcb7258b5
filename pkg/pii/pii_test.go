package pii

import "testing"

func TestMask(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"+8613812345678": "138****5678", "+85251234567": "852****4567", "123": "****"} {
		if got := MaskPhone(in); got != want {
			t.Errorf("MaskPhone(%q) = %q, want %q", in, got, want)
		}
	}
	if got := MaskID("11010519491231002X"); got != "1****************X" {
		t.Errorf("MaskID = %q", got)
	}
}
