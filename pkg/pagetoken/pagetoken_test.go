package pagetoken

import (
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
