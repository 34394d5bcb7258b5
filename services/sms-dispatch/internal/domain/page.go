package domain

import (
	"time"

	"github.com/icpverify/icpverify/pkg/pagetoken"
)

// pagePosition is where a ListMessages page ends: (created_at, message_id), newest first.
type pagePosition struct {
	At time.Time `json:"a"`
	ID string    `json:"i"`
}

// EncodePageToken returns the opaque ListMessages token for the position after the message created
// at at with id id, for the listing filtered by orderID.
func EncodePageToken(at time.Time, id, orderID string) string {
	return pagetoken.Encode(pagePosition{At: at, ID: id}, orderID)
}

// DecodePageToken reads a token EncodePageToken returned for the same orderID filter.
func DecodePageToken(tok, orderID string) (time.Time, string, error) {
	p, err := pagetoken.Decode[pagePosition](tok, orderID)
	if err != nil || p == nil {
		return time.Time{}, "", err
	}
	return p.At.UTC(), p.ID, nil
}

// Before tells whether a comes before b in ListMessages order (newest first, then message_id
// descending): the order both engines page in.
func Before(a, b Message) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

// DueBefore tells whether a is claimed before b: earliest next attempt first, then message_id, so
// that workers take due messages in a deterministic order on both engines.
func DueBefore(a, b Message) bool {
	if !a.NextAttempt.Equal(b.NextAttempt) {
		return a.NextAttempt.Before(b.NextAttempt)
	}
	return a.ID < b.ID
}
