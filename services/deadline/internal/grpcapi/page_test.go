package grpcapi

import (
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

func TestPageTokenRoundTrip(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 27, 10, 0, 0, 123000, time.UTC)
	last := domain.Deadline{Key: domain.Key{OrderID: "o", Submission: 2}, DueAt: t0}
	tok := encodePage(last, domain.Pending)
	p, err := decodePage(tok, domain.Pending)
	if err != nil || p == nil || *p != domain.PositionOf(last) {
		t.Fatalf("round trip: %+v %v, want %+v", p, err, domain.PositionOf(last))
	}
	if p, err := decodePage("", domain.Pending); p != nil || err != nil {
		t.Fatalf("empty token %v %v", p, err)
	}
	for _, bad := range []struct {
		tok   string
		state domain.State
	}{{tok, domain.Cancelled}, {tok, ""}, {"%%%", domain.Pending}, {"bm9wZQ", domain.Pending}} {
		if _, err := decodePage(bad.tok, bad.state); errs.Reason(err) != pagetoken.ReasonInvalidPageToken {
			t.Errorf("decodePage(%q, %q) = %v", bad.tok, bad.state, err)
		}
	}
}
