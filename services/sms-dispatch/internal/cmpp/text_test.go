package cmpp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSplitUCS2(t *testing.T) {
	// 70 units go whole, without a UDH.
	segs, udhi, err := SplitUCS2(strings.Repeat("验", 70), 9)
	if err != nil || udhi || len(segs) != 1 || len(segs[0]) != 140 || !bytes.Equal(segs[0][:4], []byte{0x9a, 0x8c, 0x9a, 0x8c}) {
		t.Fatalf("70 chars: %d segments, udhi %v, %v", len(segs), udhi, err)
	}
	// 71 need two: 67 + 4, each behind 05 00 03 ref total seq.
	segs, udhi, err = SplitUCS2(strings.Repeat("验", 70)+"A", 9)
	if err != nil || !udhi || len(segs) != 2 {
		t.Fatalf("71 chars: %d segments, udhi %v, %v", len(segs), udhi, err)
	}
	if !bytes.Equal(segs[0][:6], []byte{5, 0, 3, 9, 2, 1}) || len(segs[0]) != 6+134 {
		t.Fatalf("segment 1 = % x… (%d bytes)", segs[0][:8], len(segs[0]))
	}
	if want := []byte{5, 0, 3, 9, 2, 2, 0x9a, 0x8c, 0x9a, 0x8c, 0x9a, 0x8c, 0x00, 0x41}; !bytes.Equal(segs[1], want) {
		t.Fatalf("segment 2 = % x, want % x", segs[1], want)
	}
	if got := DecodeUCS2(segs[0][6:]) + DecodeUCS2(segs[1][6:]); got != strings.Repeat("验", 70)+"A" {
		t.Fatalf("segments decode to %q", got)
	}
	// A surrogate pair straddling unit 67 moves whole into the next segment.
	text := strings.Repeat("a", 66) + "😀" + strings.Repeat("b", 10)
	segs, _, _ = SplitUCS2(text, 1)
	if len(segs) != 2 || len(segs[0]) != 6+132 || !bytes.Equal(segs[1][6:10], []byte{0xd8, 0x3d, 0xde, 0x00}) {
		t.Fatalf("surrogate split: %d segments, first %d bytes, second starts % x", len(segs), len(segs[0]), segs[1][6:10])
	}
	if _, _, err := SplitUCS2(strings.Repeat("x", 67*255+1), 1); !errors.Is(err, ErrTooLong) {
		t.Fatalf("256 segments: %v", err)
	}
}

func TestNationalNumber(t *testing.T) {
	for in, want := range map[string]string{"+8613812345678": "13812345678", "+861381234567": "", "+12025550123": "",
		"+8602112345678": "", "+86138123456a8": "", "13812345678": ""} {
		got, ok := NationalNumber(in)
		if got != want || ok != (want != "") {
			t.Errorf("NationalNumber(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
}

func TestResultClasses(t *testing.T) {
	for code, want := range map[uint32]Class{8: Transient, 3: Transient, 13: Permanent, 9: Permanent, 1: Permanent,
		6: Permanent, 5: Account, 7: Account, 10: Account, 11: Account, 12: Account, 99: Transient} {
		if got := ClassOf(ResultError(code, nil)); got != want {
			t.Errorf("Result %d: %v, want %v", code, got, want)
		}
	}
	if ResultError(0, nil) != nil {
		t.Fatal("Result 0 is success")
	}
	if got := ClassOf(ResultError(99, map[uint32]Class{99: PerNumberLimit})); got != PerNumberLimit {
		t.Fatalf("override: %v", got)
	}
	var e *Error
	if err := ResultError(8, nil); !errors.As(err, &e) || e.Code != 8 || !strings.Contains(err.Error(), "flow control") {
		t.Fatalf("Result 8: %v", err)
	}
	for status, want := range map[uint32]Class{2: Account, 3: Account, 4: Account, 1: Account, 9: Transient} {
		if got := connectError(status).Class; got != want {
			t.Errorf("CONNECT status %d: %v, want %v", status, got, want)
		}
	}
}
