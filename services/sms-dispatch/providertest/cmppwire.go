package providertest

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
)

// The fake gateway reads and writes CMPP 3.0 bytes with its own offsets, not with the client's
// codec, so a mistake the codec makes both ways still fails the tests.

const (
	cmppConnect        = 0x00000001
	cmppTerminate      = 0x00000002
	cmppSubmit         = 0x00000004
	cmppDeliver        = 0x00000005
	cmppActiveTest     = 0x00000008
	cmppResp           = 0x80000000
	cmppConnectBodyLen = 27
)

type cmppPDU struct {
	cmd, seq uint32
	body     []byte
}

func readCMPP(r io.Reader) (cmppPDU, error) {
	var h [12]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return cmppPDU{}, err
	}
	n := binary.BigEndian.Uint32(h[0:4])
	if n < 12 || n > 4096 {
		return cmppPDU{}, fmt.Errorf("Total_Length %d", n)
	}
	p := cmppPDU{cmd: binary.BigEndian.Uint32(h[4:8]), seq: binary.BigEndian.Uint32(h[8:12]), body: make([]byte, n-12)}
	_, err := io.ReadFull(r, p.body)
	return p, err
}

func cmppBytes(cmd, seq uint32, body ...[]byte) []byte {
	n := 12
	for _, b := range body {
		n += len(b)
	}
	out := binary.BigEndian.AppendUint32(nil, uint32(n))
	out = binary.BigEndian.AppendUint32(out, cmd)
	out = binary.BigEndian.AppendUint32(out, seq)
	for _, b := range body {
		out = append(out, b...)
	}
	return out
}

// octets is s in a NUL-padded field of n bytes.
func octets(s string, n int) []byte {
	b := make([]byte, n)
	copy(b, s)
	return b
}

func cstr(b []byte) string { return strings.TrimRight(string(b), "\x00") }

func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// cmppLogin checks a CONNECT body: Source_Addr(6) AuthenticatorSource(16) Version(1) Timestamp(4).
// It returns the CONNECT_RESP Status and the AuthenticatorSource.
func cmppLogin(body []byte, account, secret string) (uint32, []byte) {
	if len(body) != cmppConnectBodyLen {
		return 1, nil
	}
	src, auth, version, ts := cstr(body[0:6]), body[6:22], body[22], binary.BigEndian.Uint32(body[23:27])
	if src != account {
		return 2, auth
	}
	if version > 0x30 {
		return 4, auth
	}
	plain := []byte(account)
	plain = append(plain, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	plain = append(plain, secret...)
	plain = append(plain, fmt.Sprintf("%010d", ts)...)
	if sum := md5.Sum(plain); string(sum[:]) != string(auth) {
		return 3, auth
	}
	return 0, auth
}

// cmppConnectResp is Status(4) AuthenticatorISMG(16) Version(1); the authenticator is
// MD5(Status as 4 bytes + AuthenticatorSource + secret), empty when the login failed.
func cmppConnectResp(seq, status uint32, authSource []byte, secret string) []byte {
	ismg := make([]byte, 16)
	if status == 0 {
		sum := md5.Sum(append(append(u32(status), authSource...), secret...))
		ismg = sum[:]
	}
	return cmppBytes(cmppConnect|cmppResp, seq, u32(status), ismg, []byte{0x30})
}

// cmppSubmitted is what the fake reads from a SUBMIT.
type cmppSubmitted struct {
	pkTotal, pkNumber, registered, udhi, fmt byte
	serviceID, msgSrc, srcID, dest           string
	content                                  []byte
}

var errSubmit = errors.New("SUBMIT does not parse")

// parseCMPPSubmit reads a SUBMIT body by the 3.0 offsets: Msg_Id 0, Pk_total 8, Pk_number 9,
// Registered_Delivery 10, Msg_level 11, Service_Id 12-21, Fee_UserType 22, Fee_terminal_Id 23-54,
// Fee_terminal_type 55, TP_pId 56, TP_udhi 57, Msg_Fmt 58, Msg_src 59-64, FeeType 65-66, FeeCode
// 67-72, ValId_Time 73-89, At_Time 90-106, Src_Id 107-127, DestUsr_tl 128, then 32 bytes per
// destination, Dest_terminal_type, Msg_Length, Msg_Content and LinkID(20).
func parseCMPPSubmit(b []byte) (cmppSubmitted, error) {
	if len(b) < 129 {
		return cmppSubmitted{}, errSubmit
	}
	n := int(b[128])
	at := 129 + 32*n
	if n != 1 || len(b) < at+2 {
		return cmppSubmitted{}, errSubmit
	}
	length := int(b[at+1])
	if len(b) != at+2+length+20 {
		return cmppSubmitted{}, errSubmit
	}
	return cmppSubmitted{pkTotal: b[8], pkNumber: b[9], registered: b[10], udhi: b[57], fmt: b[58],
		serviceID: cstr(b[12:22]), msgSrc: cstr(b[59:65]), srcID: cstr(b[107:128]), dest: cstr(b[129:161]),
		content: b[at+2 : at+2+length]}, nil
}

// cmppDeliverReport is a DELIVER carrying a status report: Msg_Id(8) Dest_Id(21) Service_Id(10)
// TP_pid TP_udhi Msg_Fmt Src_terminal_Id(32) Src_terminal_type Registered_Delivery=1
// Msg_Length=71, then Msg_Id(8) Stat(7) Submit_time(10) Done_time(10) Dest_terminal_Id(32)
// SMSC_sequence(4), and LinkID(20).
func cmppDeliverReport(seq uint32, deliverID, msgID uint64, stat, submitTime, doneTime, dest, srcID string, smsc uint32) []byte {
	return cmppBytes(cmppDeliver, seq, u64(deliverID), octets(srcID, 21), octets("", 10), []byte{0, 0, 0},
		octets(dest, 32), []byte{0, 1, 71}, u64(msgID), octets(stat, 7), octets(submitTime, 10), octets(doneTime, 10),
		octets(dest, 32), u32(smsc), octets("", 20))
}

// ucs2Text is UTF-16BE bytes as text.
func ucs2Text(b []byte) string {
	u := make([]uint16, 0, len(b)/2)
	for i := 0; i+1 < len(b); i += 2 {
		u = append(u, binary.BigEndian.Uint16(b[i:]))
	}
	return string(utf16.Decode(u))
}
