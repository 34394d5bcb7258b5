// Package pii masks personal data (PIPL): phone numbers and ID numbers never appear whole in logs,
// errors or responses that do not need them.
package pii

import (
	"strings"
	"unicode/utf8"
)

// MaskPhone keeps the first 3 and last 4 digits of the national number: +8613812345678 -> 138****5678.
func MaskPhone(phone string) string {
	digits := phone
	if strings.HasPrefix(digits, "+86") {
		digits = digits[3:]
	} else {
		digits = strings.TrimPrefix(digits, "+")
	}
	if len(digits) < 8 {
		return "****"
	}
	return digits[:3] + "****" + digits[len(digits)-4:]
}

// MaskID keeps the first and last character of an ID number: 110101199003074514 -> 1****************4.
func MaskID(id string) string {
	n := utf8.RuneCountInString(id)
	if n <= 2 {
		return strings.Repeat("*", n)
	}
	r := []rune(id)
	return string(r[0]) + strings.Repeat("*", n-2) + string(r[n-1])
}
