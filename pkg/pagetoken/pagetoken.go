// Package pagetoken is the one implementation of the List RPCs' paging (AIP-158): page sizes with a
// default and a maximum, and opaque page tokens holding the position after a page's last row plus the
// filter the token was issued for, so a token cannot be replayed against another query.
package pagetoken

import (
	"encoding/base64"
	"encoding/json"

	"github.com/icpverify/icpverify/pkg/errs"
)

// Page sizes of every List RPC.
const (
	DefaultSize = 50
	MaxSize     = 200
)

// MaxTokenLength bounds a page token: well above any token Encode issues for positions within the
// id limits (message ids of 128 bytes and an order id of 64, each byte escaped as \u00XX at worst:
// about 1.3 KB of JSON, 1.8 KB base64), so a longer one was not issued here and is not decoded.
const MaxTokenLength = 4096

// The ErrorInfo reasons of bad paging input.
const (
	ReasonInvalidPageToken = "INVALID_PAGE_TOKEN"
	ReasonInvalidPageSize  = "INVALID_PAGE_SIZE"
)

// Size applies the default (for 0) and the maximum to a requested page size; negative is refused.
func Size(requested int32) (int, error) {
	switch {
	case requested < 0:
		return 0, errs.Invalid("page_size", ReasonInvalidPageSize, "page_size must not be negative")
	case requested == 0:
		return DefaultSize, nil
	case requested > MaxSize:
		return MaxSize, nil
	}
	return int(requested), nil
}

type envelope[P any] struct {
	Position P      `json:"p"`
	Filter   string `json:"f,omitempty"`
}

// Encode returns the token that resumes a listing filtered by filter after position.
func Encode[P any](position P, filter string) string {
	b, err := json.Marshal(envelope[P]{Position: position, Filter: filter})
	if err != nil {
		panic("pagetoken: position must be plain data: " + err.Error()) // a programmer error, not input
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Decode reads a token Encode issued for the same filter; "" gives nil, the first page.
func Decode[P any](token, filter string) (*P, error) {
	if token == "" {
		return nil, nil
	}
	bad := errs.Invalid("page_token", ReasonInvalidPageToken, "page_token was not issued by this service for this query")
	if len(token) > MaxTokenLength {
		return nil, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return nil, bad
	}
	var e envelope[P]
	if err := json.Unmarshal(b, &e); err != nil || e.Filter != filter {
		return nil, bad
	}
	return &e.Position, nil
}
