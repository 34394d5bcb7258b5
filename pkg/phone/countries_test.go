package phone

import (
	"errors"
	"strings"
	"testing"

	"github.com/icpverify/icpverify/pkg/errs"
)

func TestParseCountries(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"86": "+86", "+86, 852,853": "+86, +852, +853", "86,86": "+86", " 86 ": "+86"} {
		c, err := ParseCountries(in)
		if err != nil || c.String() != want {
			t.Errorf("ParseCountries(%q) = %q, %v; want %q", in, c, err, want)
		}
	}
	for _, in := range []string{"", " , ", "0", "-86", "abc", "999", "8 6"} {
		if c, err := ParseCountries(in); err == nil {
			t.Errorf("ParseCountries(%q) = %q, want an error", in, c)
		}
	}
	if (Countries{}).String() != "+86" {
		t.Errorf("zero Countries = %q, want +86", Countries{})
	}
}

// TestCountriesNormalize: the default list takes mainland numbers in every spelling and refuses a
// valid foreign mobile with PHONE_COUNTRY_NOT_ALLOWED naming the allowed codes; a longer list takes
// it; malformed numbers keep their INVALID_PHONE answer.
func TestCountriesNormalize(t *testing.T) {
	t.Parallel()
	hk, err := ParseCountries("86,852")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range normalizeTests {
		for _, c := range []Countries{{}, hk} {
			got, err := c.Normalize("phone", tt.in)
			foreign := tt.ok && !strings.HasPrefix(tt.want, "+86")
			switch {
			case tt.ok && (!foreign || c.Allows(852)):
				if err != nil || got != tt.want {
					t.Errorf("%v.Normalize(%q) = %q, %v; want %q", c, tt.in, got, err, tt.want)
				}
			case foreign:
				var de *errs.Error
				if !errors.As(err, &de) || de.Kind != errs.KindInvalidArgument || de.Field != "phone" ||
					de.Reason != ReasonCountryNotAllowed || !strings.Contains(de.Message, "+86") {
					t.Errorf("%v.Normalize(%q) = %q, %#v; want InvalidArgument %s naming +86", c, tt.in, got, err, ReasonCountryNotAllowed)
				}
			default:
				if errs.Reason(err) != ReasonInvalidPhone {
					t.Errorf("%v.Normalize(%q) = %q, %v; want %s", c, tt.in, got, err, ReasonInvalidPhone)
				}
			}
		}
	}
	us := "+1 202 555 0143" // a US number: "fixed line or mobile" for the metadata, so an SMS could go there
	if _, err := Normalize("phone", us); err != nil {
		t.Fatalf("Normalize(%q): %v", us, err)
	}
	if _, err := (Countries{}).Normalize("phone", us); errs.Reason(err) != ReasonCountryNotAllowed {
		t.Fatalf("default Countries.Normalize(%q) = %v, want %s", us, err, ReasonCountryNotAllowed)
	}
}

// BenchmarkCountriesNormalize: the country check on the E.164 fast path (compare with
// BenchmarkNormalizeFastPath/after) and on a spelling that takes the slow path.
func BenchmarkCountriesNormalize(b *testing.B) {
	for _, in := range []string{"+8613812345678", "138 1234 5678"} {
		b.Run(in, func(b *testing.B) {
			b.ReportAllocs()
			var c Countries
			for b.Loop() {
				if _, err := c.Normalize("phone", in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
