// Package keyspec reads the one format every keyed secret of the suite is configured in:
// "kid:hexkey[,kid:hexkey...]". The first key is the one that signs or seals; all of them verify or
// open, so a key rotates by putting the new one first and dropping the old one once nothing made
// with it is left. verification's HMAC keys and pkg/seal's AEAD keys both parse here.
package keyspec

import (
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"

	"github.com/icpverify/icpverify/pkg/config"
)

// Key is one key and the id stored beside everything made with it.
type Key struct {
	ID     string
	Secret []byte
}

// IDRE is the shape of a key id: safe beside a value in a row, a log line or a header.
var IDRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// Parse reads spec for the keys called name ("hmac", "seal"), each of at least minBytes and, when
// maxBytes > 0, at most maxBytes. Ids are distinct. Errors never echo key material.
func Parse(name, spec string, minBytes, maxBytes int) ([]Key, error) {
	var keys []Key
	seen := map[string]bool{}
	for i, part := range strings.Split(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kid, hexKey, ok := strings.Cut(part, ":")
		if !ok {
			return nil, fmt.Errorf("%s key #%d: want kid:hexkey", name, i+1)
		}
		if !IDRE.MatchString(kid) {
			return nil, fmt.Errorf("%s key #%d: key id must be 1-32 of [A-Za-z0-9_.-]", name, i+1)
		}
		if seen[kid] {
			return nil, fmt.Errorf("%s key id %q appears twice", name, kid)
		}
		secret, err := hex.DecodeString(strings.TrimSpace(hexKey))
		if err != nil {
			return nil, fmt.Errorf("%s key %q: not hexadecimal", name, kid)
		}
		switch {
		case minBytes == maxBytes && len(secret) != minBytes:
			return nil, fmt.Errorf("%s key %q: %d bytes, want exactly %d (%d hex digits)", name, kid, len(secret), minBytes, 2*minBytes)
		case len(secret) < minBytes:
			return nil, fmt.Errorf("%s key %q: %d bytes, need at least %d", name, kid, len(secret), minBytes)
		case maxBytes > 0 && len(secret) > maxBytes:
			return nil, fmt.Errorf("%s key %q: %d bytes, at most %d", name, kid, len(secret), maxBytes)
		}
		seen[kid] = true
		keys = append(keys, Key{ID: kid, Secret: secret})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no %s key given", name)
	}
	return keys, nil
}

// HasPlaceholder tells whether spec holds a placeholder key (config.IsPlaceholder: copied from an
// example, or one character repeated), in hex or once decoded (the examples spell "example ... key"
// in hex): anyone who read it could make or open what it protects.
func HasPlaceholder(spec string) bool {
	for _, part := range strings.Split(spec, ",") {
		_, key, ok := strings.Cut(strings.TrimSpace(part), ":")
		if !ok {
			continue
		}
		raw, err := hex.DecodeString(strings.TrimSpace(key))
		if config.IsPlaceholder(key) || (err == nil && config.IsPlaceholder(string(raw))) {
			return true
		}
	}
	return false
}
