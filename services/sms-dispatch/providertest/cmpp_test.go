package providertest

import (
	"encoding/hex"
	"strings"
	"testing"
)

// The fake's own reading of a SUBMIT, on the same hand-written bytes the codec's vector pins.
func TestParseCMPPSubmitVector(t *testing.T) {
	z := func(n int) string { return strings.Repeat("00", n) }
	b, err := hex.DecodeString(z(8) + "01020101" + "494350" + z(7) + "02" + z(32) + "00000108" + "393031323334" +
		"3031" + "303030303030" + z(34) + "3130363930303031" + z(13) + "01" + "3133383132333435363738" + z(21) +
		"00" + "0a" + "0500030702020048" + "0069" + z(20))
	if err != nil {
		t.Fatal(err)
	}
	s, err := parseCMPPSubmit(b)
	if err != nil || s.pkTotal != 1 || s.pkNumber != 2 || s.udhi != 1 || s.fmt != 8 || s.serviceID != "ICP" ||
		s.msgSrc != "901234" || s.srcID != "10690001" || s.dest != "13812345678" || ucs2Text(s.content[6:]) != "Hi" {
		t.Fatalf("parseCMPPSubmit = %+v, %v", s, err)
	}
	if _, err := parseCMPPSubmit(b[:len(b)-1]); err == nil {
		t.Fatal("a short SUBMIT parsed")
	}
}
