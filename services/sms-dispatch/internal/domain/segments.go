package domain

import (
	"strings"
	"unicode/utf16"
)

// MaxSegments is how many SMS segments a text with a link may take: two, like the providers'
// verification templates (a long text is split, billed per segment and may arrive in pieces).
const MaxSegments = 2

// GSM 03.38: a text of only these characters travels as 7-bit septets (160 a segment, 153 each of
// a concatenated text); the extension characters take two septets. Anything else (Chinese) makes
// the whole text UCS-2: 70 UTF-16 units a segment, 67 each of a concatenated one (134 for two).
const (
	gsmBasic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?" +
		"¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
	gsmExtension = "^{}\\[~]|€\f"
)

// Segments is the number of SMS segments text takes.
func Segments(text string) int {
	septets, gsm := 0, true
	for _, r := range text {
		switch {
		case strings.ContainsRune(gsmBasic, r):
			septets++
		case strings.ContainsRune(gsmExtension, r):
			septets += 2
		default:
			gsm = false
		}
	}
	if gsm {
		return parts(septets, 160, 153)
	}
	return parts(len(utf16.Encode([]rune(text))), 70, 67)
}

func parts(n, single, each int) int {
	if n <= single {
		return 1
	}
	return (n + each - 1) / each
}
