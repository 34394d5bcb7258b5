// Package cmpp speaks CMPP 3.0 (China Mobile Peer to Peer, the SP-to-ISMG protocol of the carrier
// gateways) over TCP: the codec of the PDUs the client needs, long-message splitting for UCS2 text,
// Msg_Id decoding, and a Client that keeps authenticated links, a window of unacknowledged submits,
// heartbeats and reconnects, and hands status reports to a callback.
//
// Every integer is big-endian; every Octet String is fixed-width, left-aligned and padded with NUL
// bytes, as the spec lays them out.
package cmpp

import (
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// Command_Id values.
const (
	CmdConnect        uint32 = 0x00000001
	CmdConnectResp    uint32 = 0x80000001
	CmdTerminate      uint32 = 0x00000002
	CmdTerminateResp  uint32 = 0x80000002
	CmdSubmit         uint32 = 0x00000004
	CmdSubmitResp     uint32 = 0x80000004
	CmdDeliver        uint32 = 0x00000005
	CmdDeliverResp    uint32 = 0x80000005
	CmdActiveTest     uint32 = 0x00000008
	CmdActiveTestResp uint32 = 0x80000008
)

const (
	// HeaderLen is Total_Length + Command_Id + Sequence_Id.
	HeaderLen = 12
	// Version is CMPP 3.0 as CONNECT carries it (high nibble major, low nibble minor).
	Version uint8 = 0x30
	// MaxPDU bounds what a reader accepts: a SUBMIT to one number is under 400 bytes; a length
	// beyond this is a broken stream, not a message.
	MaxPDU = 4096
	// StatusReportLen is the size of a status report carried in a DELIVER's Msg_Content.
	StatusReportLen = 71
)

// Shanghai is the gateway's clock: CONNECT timestamps, Msg_Id times and report times are local.
var Shanghai = time.FixedZone("CST", 8*3600)

// ErrMalformed is a PDU whose length or fields do not fit its Command_Id.
var ErrMalformed = errors.New("cmpp: malformed PDU")

// Header is the 12-byte PDU header.
type Header struct {
	Length, Command, Seq uint32
}

// ReadPDU reads one PDU from r and returns its header and body (a fresh slice).
func ReadPDU(r io.Reader) (Header, []byte, error) {
	var hb [HeaderLen]byte
	if _, err := io.ReadFull(r, hb[:]); err != nil {
		return Header{}, nil, err
	}
	h := Header{binary.BigEndian.Uint32(hb[0:]), binary.BigEndian.Uint32(hb[4:]), binary.BigEndian.Uint32(hb[8:])}
	if h.Length < HeaderLen || h.Length > MaxPDU {
		return h, nil, fmt.Errorf("%w: Total_Length %d", ErrMalformed, h.Length)
	}
	body := make([]byte, h.Length-HeaderLen)
	if _, err := io.ReadFull(r, body); err != nil {
		return h, nil, err
	}
	return h, body, nil
}

// enc appends fields to a PDU whose header it fills in at the end.
type enc struct{ b []byte }

func newPDU(cmd, seq uint32, size int) *enc {
	e := &enc{b: make([]byte, HeaderLen, HeaderLen+size)}
	binary.BigEndian.PutUint32(e.b[4:], cmd)
	binary.BigEndian.PutUint32(e.b[8:], seq)
	return e
}

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) raw(v []byte) { e.b = append(e.b, v...) }
func (e *enc) str(s string, n int) {
	if len(s) > n {
		s = s[:n]
	}
	e.b = append(e.b, s...)
	for range n - len(s) {
		e.b = append(e.b, 0)
	}
}

func (e *enc) done() []byte {
	binary.BigEndian.PutUint32(e.b[0:], uint32(len(e.b)))
	return e.b
}

// dec reads fields from a body; the first short read sets err and every later read yields zeros.
type dec struct {
	b   []byte
	err error
}

func (d *dec) take(n int) []byte {
	if d.err != nil || len(d.b) < n {
		d.err = ErrMalformed
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) u8() uint8   { return d.take(1)[0] }
func (d *dec) u32() uint32 { return binary.BigEndian.Uint32(d.take(4)) }
func (d *dec) u64() uint64 { return binary.BigEndian.Uint64(d.take(8)) }
func (d *dec) str(n int) string {
	return strings.TrimRight(string(d.take(n)), "\x00")
}

// end is the decode error: a short body, or bytes left over.
func (d *dec) end() error {
	if d.err == nil && len(d.b) != 0 {
		return fmt.Errorf("%w: %d bytes past the last field", ErrMalformed, len(d.b))
	}
	return d.err
}

// Timestamp is t as CONNECT's Timestamp: the decimal number MMDDHHMMSS in Shanghai time.
func Timestamp(t time.Time) uint32 {
	t = t.In(Shanghai)
	return uint32(t.Month())*100000000 + uint32(t.Day())*1000000 + uint32(t.Hour())*10000 +
		uint32(t.Minute())*100 + uint32(t.Second())
}

// AuthenticatorSource is MD5(Source_Addr + 9 zero bytes + shared secret + timestamp), the
// timestamp written as its 10 digits.
func AuthenticatorSource(sourceAddr, secret string, timestamp uint32) [16]byte {
	b := make([]byte, 0, len(sourceAddr)+9+len(secret)+10)
	b = append(b, sourceAddr...)
	b = append(b, make([]byte, 9)...)
	b = append(b, secret...)
	b = fmt.Appendf(b, "%010d", timestamp)
	return md5.Sum(b)
}

// AuthenticatorISMG is MD5(Status + AuthenticatorSource + shared secret), Status as CMPP 3.0's
// 4-byte integer.
func AuthenticatorISMG(status uint32, source [16]byte, secret string) [16]byte {
	b := binary.BigEndian.AppendUint32(nil, status)
	b = append(b, source[:]...)
	b = append(b, secret...)
	return md5.Sum(b)
}

// authenticatorISMG1 is the same digest with Status as one byte, as CMPP 2.0 and some 3.0
// gateways compute it; the client accepts either, both prove the secret.
func authenticatorISMG1(status uint32, source [16]byte, secret string) [16]byte {
	b := append([]byte{byte(status)}, source[:]...)
	b = append(b, secret...)
	return md5.Sum(b)
}

// Connect is CMPP_CONNECT.
type Connect struct {
	SourceAddr    string // 6
	Authenticator [16]byte
	Version       uint8
	Timestamp     uint32
}

// Marshal is the whole PDU (39 bytes).
func (c Connect) Marshal(seq uint32) []byte {
	e := newPDU(CmdConnect, seq, 27)
	e.str(c.SourceAddr, 6)
	e.raw(c.Authenticator[:])
	e.u8(c.Version)
	e.u32(c.Timestamp)
	return e.done()
}

// ParseConnect decodes a CONNECT body.
func ParseConnect(body []byte) (Connect, error) {
	d := &dec{b: body}
	var c Connect
	c.SourceAddr = d.str(6)
	copy(c.Authenticator[:], d.take(16))
	c.Version = d.u8()
	c.Timestamp = d.u32()
	return c, d.end()
}

// ConnectResp is CMPP_CONNECT_RESP (3.0: Status is 4 bytes).
type ConnectResp struct {
	Status        uint32
	Authenticator [16]byte
	Version       uint8
}

// Marshal is the whole PDU (33 bytes).
func (c ConnectResp) Marshal(seq uint32) []byte {
	e := newPDU(CmdConnectResp, seq, 21)
	e.u32(c.Status)
	e.raw(c.Authenticator[:])
	e.u8(c.Version)
	return e.done()
}

// ParseConnectResp decodes a CONNECT_RESP body.
func ParseConnectResp(body []byte) (ConnectResp, error) {
	d := &dec{b: body}
	var c ConnectResp
	c.Status = d.u32()
	copy(c.Authenticator[:], d.take(16))
	c.Version = d.u8()
	return c, d.end()
}

// Submit is CMPP_SUBMIT (3.0 field sizes).
type Submit struct {
	MsgID              uint64
	PkTotal, PkNumber  uint8
	RegisteredDelivery uint8
	MsgLevel           uint8
	ServiceID          string // 10
	FeeUserType        uint8
	FeeTerminalID      string // 32
	FeeTerminalType    uint8
	TPPID, TPUDHI      uint8
	MsgFmt             uint8
	MsgSrc             string // 6
	FeeType            string // 2
	FeeCode            string // 6
	ValidTime, AtTime  string // 17 each
	SrcID              string // 21
	DestTerminalIDs    []string
	DestTerminalType   uint8
	Content            []byte // at most 255 (a segment is at most 140)
	LinkID             string // 20
}

// Marshal is the whole PDU.
func (s *Submit) Marshal(seq uint32) []byte {
	e := newPDU(CmdSubmit, seq, 183+32*len(s.DestTerminalIDs)+len(s.Content))
	e.u64(s.MsgID)
	e.u8(s.PkTotal)
	e.u8(s.PkNumber)
	e.u8(s.RegisteredDelivery)
	e.u8(s.MsgLevel)
	e.str(s.ServiceID, 10)
	e.u8(s.FeeUserType)
	e.str(s.FeeTerminalID, 32)
	e.u8(s.FeeTerminalType)
	e.u8(s.TPPID)
	e.u8(s.TPUDHI)
	e.u8(s.MsgFmt)
	e.str(s.MsgSrc, 6)
	e.str(s.FeeType, 2)
	e.str(s.FeeCode, 6)
	e.str(s.ValidTime, 17)
	e.str(s.AtTime, 17)
	e.str(s.SrcID, 21)
	e.u8(uint8(len(s.DestTerminalIDs)))
	for _, d := range s.DestTerminalIDs {
		e.str(d, 32)
	}
	e.u8(s.DestTerminalType)
	e.u8(uint8(len(s.Content)))
	e.raw(s.Content)
	e.str(s.LinkID, 20)
	return e.done()
}

// ParseSubmit decodes a SUBMIT body.
func ParseSubmit(body []byte) (Submit, error) {
	d := &dec{b: body}
	var s Submit
	s.MsgID = d.u64()
	s.PkTotal, s.PkNumber, s.RegisteredDelivery, s.MsgLevel = d.u8(), d.u8(), d.u8(), d.u8()
	s.ServiceID = d.str(10)
	s.FeeUserType = d.u8()
	s.FeeTerminalID = d.str(32)
	s.FeeTerminalType, s.TPPID, s.TPUDHI, s.MsgFmt = d.u8(), d.u8(), d.u8(), d.u8()
	s.MsgSrc, s.FeeType, s.FeeCode = d.str(6), d.str(2), d.str(6)
	s.ValidTime, s.AtTime, s.SrcID = d.str(17), d.str(17), d.str(21)
	for n := d.u8(); n > 0 && d.err == nil; n-- {
		s.DestTerminalIDs = append(s.DestTerminalIDs, d.str(32))
	}
	s.DestTerminalType = d.u8()
	s.Content = append([]byte(nil), d.take(int(d.u8()))...)
	s.LinkID = d.str(20)
	return s, d.end()
}

// Resp is SUBMIT_RESP and DELIVER_RESP (3.0: Msg_Id 8, Result 4).
type Resp struct {
	MsgID  uint64
	Result uint32
}

// Marshal is the whole PDU (24 bytes) with Command_Id cmd (CmdSubmitResp or CmdDeliverResp).
func (r Resp) Marshal(cmd, seq uint32) []byte {
	e := newPDU(cmd, seq, 12)
	e.u64(r.MsgID)
	e.u32(r.Result)
	return e.done()
}

// ParseResp decodes a SUBMIT_RESP or DELIVER_RESP body.
func ParseResp(body []byte) (Resp, error) {
	d := &dec{b: body}
	r := Resp{MsgID: d.u64(), Result: d.u32()}
	return r, d.end()
}

// Deliver is CMPP_DELIVER (3.0 field sizes): a mobile-originated message, or with
// RegisteredDelivery 1 a status report in Content.
type Deliver struct {
	MsgID              uint64
	DestID             string // 21
	ServiceID          string // 10
	TPPID, TPUDHI      uint8
	MsgFmt             uint8
	SrcTerminalID      string // 32
	SrcTerminalType    uint8
	RegisteredDelivery uint8
	Content            []byte
	LinkID             string // 20
}

// Marshal is the whole PDU.
func (m *Deliver) Marshal(seq uint32) []byte {
	e := newPDU(CmdDeliver, seq, 97+len(m.Content))
	e.u64(m.MsgID)
	e.str(m.DestID, 21)
	e.str(m.ServiceID, 10)
	e.u8(m.TPPID)
	e.u8(m.TPUDHI)
	e.u8(m.MsgFmt)
	e.str(m.SrcTerminalID, 32)
	e.u8(m.SrcTerminalType)
	e.u8(m.RegisteredDelivery)
	e.u8(uint8(len(m.Content)))
	e.raw(m.Content)
	e.str(m.LinkID, 20)
	return e.done()
}

// ParseDeliver decodes a DELIVER body.
func ParseDeliver(body []byte) (Deliver, error) {
	d := &dec{b: body}
	var m Deliver
	m.MsgID, m.DestID, m.ServiceID = d.u64(), d.str(21), d.str(10)
	m.TPPID, m.TPUDHI, m.MsgFmt = d.u8(), d.u8(), d.u8()
	m.SrcTerminalID = d.str(32)
	m.SrcTerminalType, m.RegisteredDelivery = d.u8(), d.u8()
	m.Content = append([]byte(nil), d.take(int(d.u8()))...)
	m.LinkID = d.str(20)
	return m, d.end()
}

// StatusReport is a DELIVER's Msg_Content when Registered_Delivery is 1.
type StatusReport struct {
	MsgID uint64 // the Msg_Id SUBMIT_RESP gave
	// Stat is the carrier's 7-character state: DELIVRD, EXPIRED, DELETED, UNDELIV, ACCEPTD,
	// UNKNOWN, REJECTD, or a gateway's own code.
	Stat                 string
	SubmitTime, DoneTime string // YYMMDDHHMM, Shanghai time
	DestTerminalID       string // 32
	SMSCSequence         uint32
}

// Marshal is the 71-byte Msg_Content.
func (r StatusReport) Marshal() []byte {
	e := &enc{b: make([]byte, 0, StatusReportLen)}
	e.u64(r.MsgID)
	e.str(r.Stat, 7)
	e.str(r.SubmitTime, 10)
	e.str(r.DoneTime, 10)
	e.str(r.DestTerminalID, 32)
	e.u32(r.SMSCSequence)
	return e.b
}

// ParseStatusReport decodes a status report's 71 bytes.
func ParseStatusReport(b []byte) (StatusReport, error) {
	d := &dec{b: b}
	r := StatusReport{MsgID: d.u64(), Stat: d.str(7), SubmitTime: d.str(10), DoneTime: d.str(10),
		DestTerminalID: d.str(32), SMSCSequence: d.u32()}
	return r, d.end()
}

// Empty is a PDU with no body: ACTIVE_TEST, TERMINATE, TERMINATE_RESP.
func Empty(cmd, seq uint32) []byte { return newPDU(cmd, seq, 0).done() }

// ActiveTestResp is ACTIVE_TEST_RESP: one reserved byte.
func ActiveTestResp(seq uint32) []byte {
	e := newPDU(CmdActiveTestResp, seq, 1)
	e.u8(0)
	return e.done()
}
