package pagetoken

import (
	"strings"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

type position struct {
	At time.Time `json:"a"`
	ID string    `json:"i"`
}

func TestRoundTripAndFilter(t *testing.T) {
	t.Parallel()
	p := position{At: time.Date(2026, 11, 27, 10, 0, 0, 123456000, time.UTC), ID: "ord_1"}
	tok := Encode(p, "state=PENDING")
	got, err := Decode[position](tok, "state=PENDING")
	if err != nil || !got.At.Equal(p.At) || got.ID != p.ID {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for name, bad := range map[string][2]string{
		"other filter": {tok, "state=FIRED"},
		"not base64":   {"%%%", "state=PENDING"},
		"not json":     {"bm90IGpzb24", "state=PENDING"},
	} {
		if _, err := Decode[position](bad[0], bad[1]); errs.Reason(err) != ReasonInvalidPageToken {
			t.Errorf("%s: %v, want INVALID_PAGE_TOKEN", name, err)
		}
	}
	if first, err := Decode[position]("", "x"); first != nil || err != nil {
		t.Errorf("empty token = %v, %v; want the first page", first, err)
	}
}

func TestSize(t *testing.T) {
	t.Parallel()
	for in, want := range map[int32]int{0: DefaultSize, 7: 7, MaxSize: MaxSize, MaxSize + 1: MaxSize} {
		if got, err := Size(in); err != nil || got != want {
			t.Errorf("Size(%d) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := Size(-1); errs.Reason(err) != ReasonInvalidPageSize {
		t.Errorf("Size(-1) = %v", err)
	}
}

// TestTokenLength: the longest token issued for ids within their limits decodes; a longer one,
// well-formed or not, is refused before it is decoded.
func TestTokenLength(t *testing.T) {
	t.Parallel()
	worst := Encode(position{At: time.Now(), ID: strings.Repeat("<", 128)}, strings.Repeat("<", 64))
	if len(worst) > MaxTokenLength/2 {
		t.Fatalf("worst issued token has %d characters, too close to %d", len(worst), MaxTokenLength)
	}
	if _, err := Decode[position](worst, strings.Repeat("<", 64)); err != nil {
		t.Fatalf("worst issued token: %v", err)
	}
	long := Encode(position{ID: strings.Repeat("o", MaxTokenLength)}, "")
	if _, err := Decode[position](long, ""); errs.Reason(err) != ReasonInvalidPageToken {
		t.Fatalf("token of %d characters: %v, want INVALID_PAGE_TOKEN", len(long), err)
	}
}
