package config

import (
	"fmt"
	"strings"
)

// placeholderWords mark a secret copied from an example instead of generated.
var placeholderWords = []string{"changeme", "placeholder", "example"}

// IsPlaceholder tells whether a secret (token, key, HMAC key) is a placeholder: it contains changeme,
// placeholder or example (any case), or is one character repeated. Such a value was never generated,
// so anyone who read the example knows it.
func IsPlaceholder(secret string) bool {
	s := strings.ToLower(strings.TrimSpace(secret))
	if s == "" {
		return true
	}
	for _, w := range placeholderWords {
		if strings.Contains(s, w) {
			return true
		}
	}
	return strings.Count(s, s[:1]) == len(s)
}

// OpenDefault is one development default a service runs with: something that would let a stranger
// in, or leak codes, in production (portal auth off, the console SMS provider, no internal credential,
// a placeholder secret).
type OpenDefault struct {
	// Flag is the flag (or flags) to set to close it.
	Flag string
	// What says what is open, for the error or the warning.
	What string
}

func (o OpenDefault) String() string { return o.What + " (" + o.Flag + ")" }

// OpenDefaultsError refuses to start a service on PostgreSQL that has open defaults, naming each.
func OpenDefaultsError(open []OpenDefault) error {
	names := make([]string, len(open))
	for i, o := range open {
		names[i] = o.String()
	}
	return fmt.Errorf("refusing to start on PostgreSQL with open defaults: %s; close them, or pass --insecure-dev "+
		"to run like this anyway (development only)", strings.Join(names, "; "))
}
