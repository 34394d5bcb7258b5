package orderid

import (
	"errors"
	"strings"
	"testing"

	"github.com/icpverify/icpverify/pkg/errs"
)

func TestChecks(t *testing.T) {
	long := strings.Repeat("o", MaxLength+1)
	tests := []struct {
		name   string
		err    error
		reason string
	}{
		{"ok", CheckSubmission("ord_1", 1), ""},
		{"empty", Check("order_id", ""), ReasonMissing},
		{"blank", Check("order_id", "  "), ReasonMissing},
		{"too long", Check("order_id", long), ReasonInvalid},
		{"longest", Check("order_id", long[1:]), ""},
		{"optional empty", CheckOptional("order_id", ""), ""},
		{"optional too long", CheckOptional("order_id", long), ReasonInvalid},
		{"zero submission", CheckSubmission("ord_1", 0), ReasonInvalidSubmission},
		{"negative submission", CheckSubmission("ord_1", -1), ReasonInvalidSubmission},
		{"missing before submission", CheckSubmission("", 0), ReasonMissing},
	}
	for _, tc := range tests {
		if got := errs.Reason(tc.err); got != tc.reason {
			t.Errorf("%s: reason %q (%v), want %q", tc.name, got, tc.err, tc.reason)
		}
		var e *errs.Error
		if tc.reason != "" && (!errors.As(tc.err, &e) || e.Field == "" || e.Kind != errs.KindInvalidArgument) {
			t.Errorf("%s: %#v is not an InvalidArgument naming its field", tc.name, tc.err)
		}
	}
}
