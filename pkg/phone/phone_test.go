package phone

import (
	"strconv"
	"testing"

	"github.com/icpverify/icpverify/pkg/errs"
)

func TestNormalize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"13812345678", "+8613812345678", true},
		{"+86 138 1234 5678", "+8613812345678", true},
		{"86-138-1234-5678", "+8613812345678", true},
		{"8613812345678", "+8613812345678", true},
		{"008613812345678", "+8613812345678", true},
		{" (+86) 138.1234.5678 ", "+8613812345678", true},
		{"+852 5123 4567", "+85251234567", true}, // Hong Kong mobile
		{"", "", false},
		{"12345", "", false},
		{"010 6552 9988", "", false}, // Beijing landline: cannot receive SMS
		{"not a phone", "", false},
		{"1381234567", "", false}, // one digit short
	}
	for _, tt := range tests {
		got, err := Normalize("phone", tt.in)
		if tt.ok {
			if err != nil || got != tt.want {
				t.Errorf("Normalize(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
			continue
		}
		var de *errs.Error
		if err == nil {
			t.Errorf("Normalize(%q) = %q, want an error", tt.in, got)
		} else if !asErr(err, &de) || de.Kind != errs.KindInvalidArgument || de.Field != "phone" || de.Reason != ReasonInvalidPhone {
			t.Errorf("Normalize(%q) error = %#v, want InvalidArgument on field phone", tt.in, err)
		}
	}
}

func asErr(err error, target **errs.Error) bool {
	e, ok := err.(*errs.Error)
	*target = e
	return ok
}

// TestFastPathAgreesWithSlowPath: for every +861[3-9]xx prefix (with several subscriber numbers each)
// the E.164 fast path answers exactly what the full parse answers, valid or not.
func TestFastPathAgreesWithSlowPath(t *testing.T) {
	t.Parallel()
	suffixes := []string{"0000000", "1234567", "5555555", "8765432", "9999999", "0102030"}
	fast, checked := 0, 0
	for p := 1300; p <= 1999; p++ {
		for _, suf := range suffixes {
			in := "+86" + strconv.Itoa(p) + suf
			got, gotErr := Normalize("phone", in)
			want, wantErr := normalizeSlow("phone", in)
			if got != want || (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
				t.Fatalf("Normalize(%q) = %q, %v; slow path %q, %v", in, got, gotErr, want, wantErr)
			}
			if n, ok := cnMobileE164(in); ok && validMobile(n) {
				fast++
			}
			checked++
		}
	}
	if fast == 0 || fast == checked {
		t.Fatalf("fast path taken for %d of %d numbers: the test does not cover both outcomes", fast, checked)
	}
	for _, in := range []string{"+8613812345678", "+8619912345678", "+8614012345678", "+8612345678901", "+861381234567",
		"+86138123456789", "+8613812345a78", "+8610812345678", "+8513812345678"} {
		got, gotErr := Normalize("phone", in)
		want, wantErr := normalizeSlow("phone", in)
		if got != want || (gotErr == nil) != (wantErr == nil) {
			t.Errorf("Normalize(%q) = %q, %v; slow path %q, %v", in, got, gotErr, want, wantErr)
		}
	}
}

func BenchmarkNormalizeE164(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := Normalize("phone", "+8613812345678"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNormalizeSlow(b *testing.B) {
	for i := 0; i < b.N; i++ {
		if _, err := normalizeSlow("phone", "+8613812345678"); err != nil {
			b.Fatal(err)
		}
	}
}
