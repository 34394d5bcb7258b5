// Package domain holds the verification rules with no I/O: drawing codes, keyed hashing with key
// rotation, input shapes, the check decision, the failure limit, resend limits and the deadline.
// Time is always a parameter so every rule is tested with exact instants.
package domain

import (
	"encoding/binary"
	"fmt"
	"io"
)

// CodeLength is the number of decimal digits in a verification code.
const CodeLength = 6

// codeSpace is 10^CodeLength, the number of distinct codes.
const codeSpace = 1_000_000

// rejectAbove is the largest multiple of codeSpace that fits in 2^32; a 32-bit draw at or above it is
// thrown away, so every code is exactly equally likely (no modulo bias).
const rejectAbove = (1 << 32) / codeSpace * codeSpace

// NewCode draws a code of CodeLength decimal digits from r, which must be a CSPRNG
// (crypto/rand.Reader) outside tests. It uses rejection sampling for a uniform distribution.
func NewCode(r io.Reader) (string, error) {
	var b [4]byte
	for range 1000 { // the chance of one rejection is < 0.03%; 1000 in a row means a broken reader
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return "", fmt.Errorf("draw code: %w", err)
		}
		v := binary.BigEndian.Uint32(b[:])
		if uint64(v) >= rejectAbove {
			continue
		}
		return fmt.Sprintf("%0*d", CodeLength, v%codeSpace), nil
	}
	return "", fmt.Errorf("draw code: random source keeps returning out-of-range values")
}

// ValidCodeShape reports whether s is exactly CodeLength ASCII digits.
func ValidCodeShape(s string) bool {
	if len(s) != CodeLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
