package grpcapi

import (
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

func TestPageTokenRoundTrip(t *testing.T) {
	t.Parallel()
	last := domain.Message{CreatedAt: time.Date(2026, 11, 26, 2, 0, 0, 123000, time.UTC), ID: "vc-1:2"}
	tok := encodePage(last, "ord_1")
	p, err := decodePage(tok, "ord_1")
	if err != nil || p == nil || !p.CreatedAt.Equal(last.CreatedAt) || p.ID != last.ID {
		t.Fatalf("round trip = %+v %v", p, err)
	}
	if p, err := decodePage("", "ord_1"); p != nil || err != nil {
		t.Fatalf("empty token %v %v", p, err)
	}
	// A token is bound to the order filter it was issued for.
	if _, err := decodePage(tok, "ord_2"); errs.Reason(err) != pagetoken.ReasonInvalidPageToken {
		t.Errorf("token replayed on another filter: %v", err)
	}
	for _, bad := range []string{"%%%", "bm9jb2xvbg", "eDp5"} {
		if _, err := decodePage(bad, ""); errs.Reason(err) != pagetoken.ReasonInvalidPageToken {
			t.Errorf("decodePage(%q) = %v", bad, err)
		}
	}
}
