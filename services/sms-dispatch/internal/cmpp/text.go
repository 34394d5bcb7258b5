package cmpp

import (
	"errors"
	"strings"
	"time"
	"unicode/utf16"
)

// Msg_Fmt values.
const (
	FmtASCII uint8 = 0
	FmtUCS2  uint8 = 8
)

const (
	// SingleUCS2 is how many UTF-16 units fit one 140-byte message.
	SingleUCS2 = 70
	// SegmentUCS2 is how many fit a segment of a long message, after its 6-byte UDH.
	SegmentUCS2 = 67
	// MaxSegments is what the UDH's one-byte counts allow.
	MaxSegments = 255
)

// ErrTooLong is a text that needs more than MaxSegments segments.
var ErrTooLong = errors.New("cmpp: text needs more than 255 segments")

// SplitUCS2 encodes text as UCS2 (UTF-16BE, so a character beyond the BMP takes a surrogate pair)
// and cuts it into Msg_Contents: one when it fits 70 units, else segments of at most 67 units, each
// behind the concatenation UDH 05 00 03 ref total seq (TP_udhi=1). A surrogate pair is never cut.
func SplitUCS2(text string, ref byte) (segments [][]byte, udhi bool, err error) {
	units := utf16.Encode([]rune(text))
	if len(units) <= SingleUCS2 {
		return [][]byte{ucs2(units)}, false, nil
	}
	var parts [][]uint16
	for len(units) > 0 {
		n := min(SegmentUCS2, len(units))
		if n < len(units) && utf16.IsSurrogate(rune(units[n-1])) && units[n-1] < 0xdc00 {
			n-- // a high surrogate stays with its low one
		}
		parts = append(parts, units[:n])
		units = units[n:]
	}
	if len(parts) > MaxSegments {
		return nil, false, ErrTooLong
	}
	for i, p := range parts {
		seg := append([]byte{0x05, 0x00, 0x03, ref, byte(len(parts)), byte(i + 1)}, ucs2(p)...)
		segments = append(segments, seg)
	}
	return segments, true, nil
}

func ucs2(units []uint16) []byte {
	b := make([]byte, 0, 2*len(units))
	for _, u := range units {
		b = append(b, byte(u>>8), byte(u))
	}
	return b
}

// DecodeUCS2 is the text of UTF-16BE bytes (an odd last byte is dropped).
func DecodeUCS2(b []byte) string {
	units := make([]uint16, len(b)/2)
	for i := range units {
		units[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(units))
}

// MsgID is a Msg_Id split per the spec's bit layout, most significant first: month (4 bits), day
// (5), hour (5), minute (6), second (6) of the gateway's clock, the gateway's code (22) and a
// sequence number (16).
type MsgID struct {
	Month, Day, Hour, Minute, Second int
	Gateway                          uint32
	Seq                              uint16
}

// DecodeMsgID splits a Msg_Id.
func DecodeMsgID(id uint64) MsgID {
	return MsgID{
		Month:   int(id >> 60 & 0xf),
		Day:     int(id >> 55 & 0x1f),
		Hour:    int(id >> 50 & 0x1f),
		Minute:  int(id >> 44 & 0x3f),
		Second:  int(id >> 38 & 0x3f),
		Gateway: uint32(id >> 16 & 0x3fffff),
		Seq:     uint16(id),
	}
}

// Uint64 packs m back into a Msg_Id.
func (m MsgID) Uint64() uint64 {
	return uint64(m.Month&0xf)<<60 | uint64(m.Day&0x1f)<<55 | uint64(m.Hour&0x1f)<<50 |
		uint64(m.Minute&0x3f)<<44 | uint64(m.Second&0x3f)<<38 | uint64(m.Gateway&0x3fffff)<<16 | uint64(m.Seq)
}

// NationalNumber is the 11-digit mainland mobile number CMPP takes for an E.164 +86 number.
func NationalNumber(e164 string) (string, bool) {
	n, ok := strings.CutPrefix(e164, "+86")
	if !ok || len(n) != 11 || n[0] != '1' {
		return "", false
	}
	for _, c := range n {
		if c < '0' || c > '9' {
			return "", false
		}
	}
	return n, true
}

// E164 is the E.164 form of a terminal id a gateway sends: 11 digits from 1 are a mainland
// number, an 86 prefix is kept; anything else is returned as it came.
func E164(terminal string) string {
	switch {
	case len(terminal) == 11 && terminal[0] == '1':
		return "+86" + terminal
	case len(terminal) == 13 && strings.HasPrefix(terminal, "861"):
		return "+" + terminal
	}
	return terminal
}

// ReportTime parses a status report's YYMMDDHHMM (Shanghai time); the zero time when it does not
// parse.
func ReportTime(s string) time.Time {
	t, err := time.ParseInLocation("0601021504", s, Shanghai)
	if err != nil {
		return time.Time{}
	}
	return t
}
