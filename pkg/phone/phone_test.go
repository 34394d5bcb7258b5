package phone

import (
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
