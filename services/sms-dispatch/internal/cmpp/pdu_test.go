package cmpp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

// unhex reads a vector written field by field, spaces and comments between fields ignored.
func unhex(t *testing.T, parts ...string) []byte {
	t.Helper()
	var sb strings.Builder
	for _, p := range parts {
		sb.WriteString(strings.ReplaceAll(p, " ", ""))
	}
	b, err := hex.DecodeString(sb.String())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func zeros(n int) string { return strings.Repeat("00", n) }

// The digests below were computed outside Go (python hashlib) from the spec's formulas.
func TestConnectVector(t *testing.T) {
	at := time.Date(2026, 12, 4, 1, 30, 45, 0, Shanghai)
	ts := Timestamp(at)
	if ts != 1204013045 {
		t.Fatalf("Timestamp = %d, want 1204013045", ts)
	}
	if got := Timestamp(at.UTC()); got != ts {
		t.Fatalf("Timestamp of the same instant in UTC = %d: the gateway's clock is Shanghai's", got)
	}
	auth := AuthenticatorSource("901234", "s3cret", ts)
	if hex.EncodeToString(auth[:]) != "497b887e5ba6ff97cfa1df0da5d89d90" {
		t.Fatalf("AuthenticatorSource = %x", auth)
	}
	got := Connect{SourceAddr: "901234", Authenticator: auth, Version: Version, Timestamp: ts}.Marshal(1)
	want := unhex(t,
		"00000027 00000001 00000001", // Total_Length 39, CMPP_CONNECT, seq 1
		"393031323334",               // Source_Addr "901234"
		"497b887e5ba6ff97cfa1df0da5d89d90",
		"30",       // Version 3.0
		"47c3c7f5") // Timestamp 1204013045
	if !bytes.Equal(got, want) {
		t.Fatalf("CONNECT\n got %x\nwant %x", got, want)
	}
	c, err := ParseConnect(want[HeaderLen:])
	if err != nil || c.SourceAddr != "901234" || c.Timestamp != ts || c.Authenticator != auth {
		t.Fatalf("ParseConnect = %+v, %v", c, err)
	}
	ismg := AuthenticatorISMG(0, auth, "s3cret")
	if hex.EncodeToString(ismg[:]) != "f1addc96b70f65a047fee5984d23927a" {
		t.Fatalf("AuthenticatorISMG = %x", ismg)
	}
	resp := unhex(t, "00000021 80000001 00000001", "00000000", "f1addc96b70f65a047fee5984d23927a", "30")
	if got := (ConnectResp{Status: 0, Authenticator: ismg, Version: Version}).Marshal(1); !bytes.Equal(got, resp) {
		t.Fatalf("CONNECT_RESP\n got %x\nwant %x", got, resp)
	}
	r, err := ParseConnectResp(resp[HeaderLen:])
	if err != nil || r.Status != 0 || r.Authenticator != ismg || r.Version != 0x30 {
		t.Fatalf("ParseConnectResp = %+v, %v", r, err)
	}
	if _, err := ParseConnectResp(resp[HeaderLen : len(resp)-1]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a short CONNECT_RESP parsed: %v", err)
	}
}

func TestSubmitVector(t *testing.T) {
	s := &Submit{PkTotal: 1, PkNumber: 1, RegisteredDelivery: 1, MsgLevel: 1, ServiceID: "ICP", FeeUserType: 2,
		MsgFmt: FmtUCS2, MsgSrc: "901234", FeeType: "01", FeeCode: "000000", SrcID: "10690001",
		DestTerminalIDs: []string{"13812345678"}, Content: []byte{0x00, 0x48, 0x00, 0x69}}
	want := unhex(t,
		"000000c7 00000004 00000007", // 199 bytes, CMPP_SUBMIT, seq 7
		zeros(8),                     // Msg_Id (the ISMG fills it)
		"01 01 01 01",                // Pk_total, Pk_number, Registered_Delivery, Msg_level
		"494350"+zeros(7),            // Service_Id "ICP" (10)
		"02",                         // Fee_UserType
		zeros(32),                    // Fee_terminal_Id
		"00 00 00 08",                // Fee_terminal_type, TP_pId, TP_udhi, Msg_Fmt UCS2
		"393031323334",               // Msg_src "901234"
		"3031",                       // FeeType "01"
		"303030303030",               // FeeCode "000000"
		zeros(17), zeros(17),         // ValId_Time, At_Time
		"3130363930303031"+zeros(13),       // Src_Id "10690001" (21)
		"01",                               // DestUsr_tl
		"3133383132333435363738"+zeros(21), // Dest_terminal_Id (32)
		"00",                               // Dest_terminal_type
		"04", "00480069",                   // Msg_Length, Msg_Content "Hi"
		zeros(20)) // LinkID
	if got := s.Marshal(7); !bytes.Equal(got, want) {
		t.Fatalf("SUBMIT\n got %x\nwant %x", got, want)
	}
	p, err := ParseSubmit(want[HeaderLen:])
	if err != nil || p.SrcID != "10690001" || p.DestTerminalIDs[0] != "13812345678" || !bytes.Equal(p.Content, s.Content) ||
		p.MsgFmt != 8 || p.ServiceID != "ICP" || p.MsgSrc != "901234" {
		t.Fatalf("ParseSubmit = %+v, %v", p, err)
	}
	if _, err := ParseSubmit(append(want[HeaderLen:], 0)); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a SUBMIT with a byte too many parsed: %v", err)
	}

	resp := unhex(t, "00000018 80000004 00000007", "c205eb4030390007", "00000008")
	r, err := ParseResp(resp[HeaderLen:])
	if err != nil || r.MsgID != 0xc205eb4030390007 || r.Result != 8 {
		t.Fatalf("ParseResp = %+v, %v", r, err)
	}
	if got := r.Marshal(CmdSubmitResp, 7); !bytes.Equal(got, resp) {
		t.Fatalf("SUBMIT_RESP\n got %x\nwant %x", got, resp)
	}
}

func TestDeliverReportVector(t *testing.T) {
	pdu := unhex(t,
		"000000b4 00000005 0000002a",       // 180 bytes, CMPP_DELIVER, seq 42
		"0000000000000063",                 // Msg_Id of the DELIVER itself
		"3130363930303031"+zeros(13),       // Dest_Id "10690001" (21)
		zeros(10),                          // Service_Id
		"00 00 00",                         // TP_pid, TP_udhi, Msg_Fmt
		"3133383132333435363738"+zeros(21), // Src_terminal_Id (32)
		"00 01 47",                         // Src_terminal_type, Registered_Delivery 1, Msg_Length 71
		"c205eb4030390007",                 // report: Msg_Id
		"554e44454c4956",                   // Stat "UNDELIV"
		"32363132303430313330",             // Submit_time "2612040130"
		"32363132303430313331",             // Done_time "2612040131"
		"3133383132333435363738"+zeros(21), // Dest_terminal_Id (32)
		"00000005",                         // SMSC_sequence
		zeros(20))                          // LinkID
	h, body, err := ReadPDU(bytes.NewReader(pdu))
	if err != nil || h != (Header{Length: 180, Command: CmdDeliver, Seq: 42}) {
		t.Fatalf("ReadPDU = %+v, %v", h, err)
	}
	m, err := ParseDeliver(body)
	if err != nil || m.RegisteredDelivery != 1 || m.MsgID != 0x63 || m.DestID != "10690001" {
		t.Fatalf("ParseDeliver = %+v, %v", m, err)
	}
	r, err := ParseStatusReport(m.Content)
	want := StatusReport{MsgID: 0xc205eb4030390007, Stat: "UNDELIV", SubmitTime: "2612040130", DoneTime: "2612040131",
		DestTerminalID: "13812345678", SMSCSequence: 5}
	if err != nil || r != want {
		t.Fatalf("ParseStatusReport = %+v, %v", r, err)
	}
	if got := m.Marshal(42); !bytes.Equal(got, pdu) {
		t.Fatalf("DELIVER\n got %x\nwant %x", got, pdu)
	}
	if done := ReportTime(r.DoneTime); !done.Equal(time.Date(2026, 12, 4, 1, 31, 0, 0, Shanghai)) {
		t.Fatalf("ReportTime = %v", done)
	}
	if E164(r.DestTerminalID) != "+8613812345678" {
		t.Fatalf("E164 = %q", E164(r.DestTerminalID))
	}
	resp := unhex(t, "00000018 80000005 0000002a", "0000000000000063", "00000000")
	if got := (Resp{MsgID: 0x63}).Marshal(CmdDeliverResp, 42); !bytes.Equal(got, resp) {
		t.Fatalf("DELIVER_RESP\n got %x\nwant %x", got, resp)
	}
}

func TestSmallPDUVectors(t *testing.T) {
	for _, c := range []struct {
		got  []byte
		want string
	}{
		{Empty(CmdActiveTest, 3), "0000000c 00000008 00000003"},
		{ActiveTestResp(3), "0000000d 80000008 00000003 00"},
		{Empty(CmdTerminate, 4), "0000000c 00000002 00000004"},
		{Empty(CmdTerminateResp, 4), "0000000c 80000002 00000004"},
	} {
		if want := unhex(t, c.want); !bytes.Equal(c.got, want) {
			t.Errorf("got %x, want %x", c.got, want)
		}
	}
	for _, bad := range []string{"0000000b 00000008 00000001", "00100000 00000004 00000001"} {
		if _, _, err := ReadPDU(bytes.NewReader(unhex(t, bad))); !errors.Is(err, ErrMalformed) {
			t.Errorf("ReadPDU(%s) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestMsgIDLayout(t *testing.T) {
	// 12-04 01:30:45, gateway 12345, sequence 7, packed by hand (python) per the spec's bit layout.
	want := MsgID{Month: 12, Day: 4, Hour: 1, Minute: 30, Second: 45, Gateway: 12345, Seq: 7}
	if got := DecodeMsgID(0xc205eb4030390007); got != want {
		t.Fatalf("DecodeMsgID = %+v, want %+v", got, want)
	}
	if got := want.Uint64(); got != 0xc205eb4030390007 {
		t.Fatalf("Uint64 = %#x", got)
	}
	if got := DecodeMsgID(^uint64(0)); got.Gateway != 0x3fffff || got.Seq != 0xffff || got.Month != 15 || got.Second != 63 {
		t.Fatalf("all ones = %+v", got)
	}
}
