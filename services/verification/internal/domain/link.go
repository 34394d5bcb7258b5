package domain

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
)

// The verification link (核验链接) of an SMS: <base>/<token>. The token names one generation of one
// challenge and nothing else: it never carries or replaces the code (a check through the link still
// needs the code and the ID tail). It is 128 bits from crypto/rand, so it cannot be guessed, and it
// is stored only as its SHA-256: an unkeyed hash suffices for a 2^128 space (unlike a 6-digit code),
// needs no key rotation, and keeps a database dump from yielding live links. Each new code draws a
// new token, so only the newest SMS's link works, like its code.

// LinkTokenBytes is the token's entropy in bytes; LinkTokenLength its base64url length (no padding).
const (
	LinkTokenBytes  = 16
	LinkTokenLength = 22
)

// MaxLinkLength bounds the whole link <base>/<token>: with the longest base it allows
// (MaxLinkBaseLength) the zh-CN text with signature, code, deadline and link stays within two
// UCS-2 SMS segments (134 characters; sms-dispatch's render test measures it).
const (
	MaxLinkLength     = 64
	MaxLinkBaseLength = MaxLinkLength - 1 - LinkTokenLength
)

// The reasons of the link.
const (
	ReasonLinkNotFound     = "LINK_NOT_FOUND"
	ReasonInvalidLinkToken = "INVALID_LINK_TOKEN"
)

// LinkNotFoundMessage is the one answer for a link that is unknown, expired, used, locked or cancelled.
const LinkNotFoundMessage = "链接已失效 (this verification link is no longer valid)"

// ErrLinkNotFound is the uniform answer to GetLink for every dead or unknown link.
func ErrLinkNotFound() error { return errs.NotFound(ReasonLinkNotFound, LinkNotFoundMessage) }

// NewLinkToken draws a token from crypto/rand (never the code source tests replace: a link must
// stay unguessable whatever a test does to the codes).
func NewLinkToken() (string, error) {
	b := make([]byte, LinkTokenBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw link token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// LinkHash is what the store keeps of a token, and looks it up by.
func LinkHash(token string) []byte {
	h := sha256.Sum256([]byte("link:" + token))
	return h[:]
}

// DrawLink gives challenge c a new link token (a new code's) and returns it.
func DrawLink(c *Challenge) (string, error) {
	t, err := NewLinkToken()
	if err != nil {
		return "", err
	}
	c.LinkHash = LinkHash(t)
	return t, nil
}

// CheckLinkToken checks a token's shape: LinkTokenLength characters of the base64url alphabet.
func CheckLinkToken(field, token string) error {
	if len(token) != LinkTokenLength {
		return errs.Invalid(field, ReasonInvalidLinkToken, "a link token has %d characters", LinkTokenLength)
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return errs.Invalid(field, ReasonInvalidLinkToken, "a link token is base64url")
	}
	return nil
}

// LinkAllows tells whether a check through the link of hash link (nil: no link) may pass challenge c.
func LinkAllows(link []byte, c Challenge) bool {
	return link == nil || subtle.ConstantTimeCompare(link, c.LinkHash) == 1
}

// LinkRecord is a challenge found by its link hash, with its session.
type LinkRecord struct {
	Session   Session
	Challenge Challenge
	Found     bool
}

// LinkLive tells whether the link of r may be shown to a caller of scope at now: the challenge is
// pending in an open session before the deadline, and the caller sees its tenant. Everything else
// (unknown, another tenant's, passed, locked, closed, cancelled, past the window) is one answer.
func LinkLive(now time.Time, scope Scope, r LinkRecord) bool {
	return r.Found && scope.Sees(r.Session.Tenant) && Checkable(now, r.Session.State, r.Challenge.State, r.Session.DeadlineAt)
}

// LinkURL is the link an SMS carries ("" without a base: no link).
func LinkURL(base, token string) string {
	if base == "" {
		return ""
	}
	return base + "/" + token
}

// CheckLinkBase checks --verify-link-base: an absolute http(s) URL without query or fragment, short
// enough that the SMS stays within two segments. A trailing slash is dropped.
func CheckLinkBase(base string) (string, error) {
	if base == "" {
		return "", nil
	}
	base = strings.TrimSuffix(base, "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		u.User != nil || strings.ContainsAny(base, " \t\r\n") {
		return "", fmt.Errorf("--verify-link-base %q: want an absolute http(s) URL without query or fragment, e.g. https://beian.example.cn/v", base)
	}
	if n := len(base); n > MaxLinkBaseLength {
		return "", fmt.Errorf("--verify-link-base is %d characters; at most %d, so the SMS with the link stays within two segments", n, MaxLinkBaseLength)
	}
	for _, r := range base {
		if r > 0x7e {
			return "", fmt.Errorf("--verify-link-base %q: ASCII only (punycode for an international domain)", base)
		}
	}
	return base, nil
}
