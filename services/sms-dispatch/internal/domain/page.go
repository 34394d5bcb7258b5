package domain

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// EncodePageToken returns the opaque ListMessages token for the position after the message created
// at at with id id (pages run newest first by (created_at, message_id)).
func EncodePageToken(at time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(at.UnixMicro(), 10) + ":" + id))
}

// DecodePageToken reads a token EncodePageToken returned.
func DecodePageToken(tok string) (time.Time, string, error) {
	bad := errs.Invalid("page_token", ReasonInvalidPageToken, "page_token is not one this service returned")
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return time.Time{}, "", bad
	}
	micros, id, ok := strings.Cut(string(b), ":")
	if !ok {
		return time.Time{}, "", bad
	}
	n, err := strconv.ParseInt(micros, 10, 64)
	if err != nil {
		return time.Time{}, "", bad
	}
	return time.UnixMicro(n).UTC(), id, nil
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
