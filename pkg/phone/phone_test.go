package phone

import (
	"flag"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/nyaruka/phonenumbers"

	"github.com/icpverify/icpverify/pkg/errs"
)

var normalizeTests = []struct {
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
	{"1381234567", "", false},                                                  // one digit short
	{"+86 138" + strings.Repeat(" ", MaxInputLength) + "1234 5678", "", false}, // separators past MaxInputLength
}

func TestNormalize(t *testing.T) {
	t.Parallel()
	for _, tt := range normalizeTests {
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
			want, _, wantErr := normalizeSlow("phone", in)
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
		want, _, wantErr := normalizeSlow("phone", in)
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
		if _, _, err := normalizeSlow("phone", "+8613812345678"); err != nil {
			b.Fatal(err)
		}
	}
}

// validMobileGetNumberType is the former validMobile: the reference that validMobile must agree with.
func validMobileGetNumberType(nationalNumber uint64) bool {
	cc := int32(cnCountryCode)
	num := &phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: &nationalNumber}
	switch phonenumbers.GetNumberType(num) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE:
		return true
	}
	return false
}

// normalizeGetNumberType is the former Normalize (fast path on validMobileGetNumberType), to benchmark against.
func normalizeGetNumberType(field, raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", errs.Invalid(field, ReasonInvalidPhone, "a mobile phone number is required")
	}
	if n, ok := cnMobileE164(s); ok && validMobileGetNumberType(n) {
		return s, nil
	}
	e164, _, err := normalizeSlow(field, s)
	return e164, err
}

// TestValidMobileAgreesWithGetNumberType checks validMobile against the GetNumberType rule on every
// 7-digit prefix 1000000..1999999 (one random 4-digit subscriber part each; every 20th by default,
// each of them with -args -phone.sweep-step=1, ~15 s), on 40k 10- and 12-digit numbers
// (lengths that share the 1x prefixes with other types), on random numbers of other lengths, and on
// the +86 numbers of the tables above.
var sweepStep = flag.Int("phone.sweep-step", 20, "TestValidMobileAgreesWithGetNumberType checks every n-th 7-digit prefix")

func TestValidMobileAgreesWithGetNumberType(t *testing.T) {
	t.Parallel()
	check := func(t *testing.T, n uint64) bool {
		if got, want := validMobile(n), validMobileGetNumberType(n); got != want {
			t.Errorf("validMobile(%d) = %v, GetNumberType rule says %v", n, got, want)
			return got
		}
		return validMobileGetNumberType(n)
	}
	// Shards of the 11-digit prefixes run in parallel: the reference costs microseconds a number.
	const shards = 10
	for shard := range uint64(shards) {
		t.Run("11digits/"+strconv.FormatUint(shard, 10), func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(shard, 86))
			mobile, checked := 0, 0
			step := uint64(shards * *sweepStep)
			for p := 1_000_000 + shard; p <= 1_999_999; p += step {
				if check(t, p*10_000+rng.Uint64N(10_000)) {
					mobile++
				}
				checked++
				if t.Failed() {
					t.FailNow()
				}
			}
			if mobile == 0 || mobile == checked {
				t.Fatalf("%d of %d numbers mobile: the sample does not cover both outcomes", mobile, checked)
			}
		})
	}
	t.Run("other lengths", func(t *testing.T) {
		t.Parallel()
		rng := rand.New(rand.NewPCG(86, 86))
		// 10 and 12 digits with prefixes 10..19 (toll free 400/800 and shared cost live near here).
		for _, pow := range []uint64{1e8, 1e10} {
			for p := uint64(10); p <= 19; p++ {
				for range 2_000 {
					check(t, p*pow+rng.Uint64N(pow))
				}
			}
		}
		// Any first digits, 1 to 17 digits long.
		for digits := 1; digits <= 17; digits++ {
			lo, hi := uint64(1), uint64(10)
			for range digits - 1 {
				lo, hi = lo*10, hi*10
			}
			for range 2_000 {
				check(t, lo+rng.Uint64N(hi-lo))
			}
		}
		check(t, 0)
	})
	t.Run("tables", func(t *testing.T) {
		t.Parallel()
		inputs := []string{"+8613812345678", "+8619912345678", "+8614012345678", "+8612345678901", "+861381234567",
			"+86138123456789", "+8610812345678", "+8617401234567", "+8617406234567", "+864001234567", "+868001234567"}
		for _, tt := range normalizeTests {
			inputs = append(inputs, tt.in)
		}
		seen := 0
		for _, in := range inputs {
			num, err := phonenumbers.Parse(separators.Replace(in), DefaultRegion)
			if err == nil && num.GetCountryCode() == cnCountryCode {
				check(t, num.GetNationalNumber())
				seen++
			}
		}
		if seen < 10 {
			t.Fatalf("only %d +86 numbers in the tables", seen)
		}
	})
}

// BenchmarkNormalizeFastPath: Normalize of E.164 CN mobiles, with validMobile on precompiled patterns
// (after) and on GetNumberType (before).
func BenchmarkNormalizeFastPath(b *testing.B) {
	inputs := []string{"+8613812345678", "+8619912345678", "+8615012345678", "+8617401234567"}
	for _, bm := range []struct {
		name      string
		normalize func(field, raw string) (string, error)
	}{{"before", normalizeGetNumberType}, {"after", Normalize}} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				in := inputs[i%len(inputs)]
				if got, err := bm.normalize("phone", in); err != nil || got != in {
					b.Fatal(got, err)
				}
			}
		})
	}
}
