package e2e

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// pgDumpBin is the PostgreSQL client's pg_dump (Debian's postgresql-client, beside the server), else
// the one on PATH.
func pgDumpBin(t *testing.T) string {
	if _, err := os.Stat("/usr/bin/pg_dump"); err == nil {
		return "/usr/bin/pg_dump"
	}
	p, err := exec.LookPath("pg_dump")
	if err != nil {
		t.Fatalf("no pg_dump (install the PostgreSQL client): %v", err)
	}
	return p
}

// serviceSchemas are the schemas the four services keep their tables in.
var serviceSchemas = []string{"filing", "verification", "sms_dispatch", "deadline"}

// No code in a database dump (security review L2): a flow that sends codes (two orders, a resend,
// checks) runs while sms-dispatch's provider holds every send and sms-dispatch is then killed, so
// its messages stay QUEUED and verification's SendMessage calls wait in the outbox: the moment the
// codes used to be at rest in the clear. A data-only pg_dump of every service's schema, taken then
// and again after the run, holds none of the codes the gateway received.
func TestNoCodeInADatabaseDump(t *testing.T) {
	s := startSuite(t, options{})
	s.gateway.mu.Lock()
	s.gateway.hold = make(chan struct{})
	s.gateway.mu.Unlock()

	principal := person("郑一", "13812345678")
	web := person("冯二", "13987654321")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "dump.cn", Person: web}))
	// Both texts reach the held provider: sms-dispatch has them QUEUED and claimed.
	eventually(t, 20*time.Second, "both codes at the held gateway", func() (bool, string) {
		a, b := len(s.gateway.ForPhone(phoneA)), len(s.gateway.ForPhone(phoneB))
		return a > 0 && b > 0, fmt.Sprintf("%d and %d posts", a, b)
	})
	s.kill("sms-dispatch")
	first := s.waitCodes(1, phoneA, phoneB)

	// With sms-dispatch down, new codes wait in verification's outbox: a resend, another order.
	if _, err := s.Verification.ResendCode(ctx(t), &verificationv1.ResendCodeRequest{RequestId: "dump-resend-1",
		Phone: phoneB, IdTail: tailOf(web)}); err != nil {
		t.Fatalf("resend: %v", err)
	}
	third := person("陈三", "13700001111")
	s.submit(firstFiling(third, &filingv1.Website{Domain: "dump2.cn", Person: third}))
	if resp, err := s.verify(phoneA, first[phoneA], tailOf(principal)); err != nil ||
		resp.Result != verificationv1.VerifyResult_VERIFY_RESULT_PASSED_WAITING_FOR_OTHERS {
		t.Fatalf("check of the principal: %v %v", resp, err)
	}
	eventually(t, 20*time.Second, "two SendMessage calls pending in the outbox", func() (bool, string) {
		n := s.count(`SELECT count(*) FROM verification.outbox WHERE target = 'smsdispatch.SendMessage' AND dead_at IS NULL`)
		return n >= 2, fmt.Sprintf("%d pending", n)
	})
	if n := s.count(`SELECT count(*) FROM sms_dispatch.messages WHERE state = 'QUEUED'`); n != 2 {
		t.Fatalf("%d messages QUEUED in sms-dispatch, want the 2 held ones", n)
	}
	whileQueued := s.pgDump()

	// The provider recovers and sms-dispatch comes back: every code goes out; the run completes.
	s.gateway.mu.Lock()
	close(s.gateway.hold)
	s.gateway.hold = nil
	s.gateway.mu.Unlock()
	s.restart("sms-dispatch")
	s.waitCodes(2, phoneB)
	s.waitCodes(1, phoneA, phoneC)
	resent := "" // the resend's code: the post to phoneB of a message other than the first
	for _, p := range s.gateway.ForPhone(phoneB) {
		if p.MessageID != s.gateway.ForPhone(phoneB)[0].MessageID {
			resent = p.Code()
		}
	}
	if resp, err := s.verify(phoneB, resent, tailOf(web)); err != nil ||
		resp.Result != verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED {
		t.Fatalf("check of the website person with the resent code: %v %v", resp, err)
	}
	s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
	eventually(t, 20*time.Second, "every message SENT or FAILED", func() (bool, string) {
		n := s.count(`SELECT count(*) FROM sms_dispatch.messages WHERE state = 'QUEUED'`)
		return n == 0, fmt.Sprintf("%d QUEUED", n)
	})
	after := s.pgDump()

	codes := map[string]bool{}
	for _, p := range s.gateway.Posts() {
		codes[p.Code()] = true
	}
	if len(codes) < 4 {
		t.Fatalf("the gateway received %d distinct codes, want at least 4 (two orders and a resend)", len(codes))
	}
	for name, dump := range map[string][]byte{"while queued": whileQueued, "after the run": after} {
		for code := range codes {
			if where := findCode(dump, code); where != "" {
				t.Errorf("the dump %s holds a code the gateway received (%s…), %s", name, code[:2], where)
			}
		}
	}
}

// count runs a count query on the suite's database.
func (s *suite) count(query string) int {
	s.t.Helper()
	conn, err := pgx.Connect(context.Background(), s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		s.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// pgDump is a data-only dump of every service schema of the suite's database, as a backup holds it.
func (s *suite) pgDump() []byte {
	s.t.Helper()
	args := []string{"--data-only", "--no-owner", "--dbname=" + s.dbURL}
	for _, schema := range serviceSchemas {
		args = append(args, "--schema="+schema)
	}
	var stderr bytes.Buffer
	cmd := exec.Command(pgDumpBin(s.t), args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		s.t.Fatalf("pg_dump: %v\n%s", err, stderr.String())
	}
	// Not vacuous: the dump has the tables the codes used to sit in.
	for _, table := range []string{"verification.outbox", "sms_dispatch.messages", "filing.orders", "deadline."} {
		if !bytes.Contains(out, []byte("COPY "+table)) {
			s.t.Fatalf("the dump has no COPY of %s:\n%s", table, tail(string(out), 3000))
		}
	}
	return out
}

var (
	// byteaRE is a bytea value as pg_dump writes it in COPY data (hex output, the backslash doubled).
	byteaRE = regexp.MustCompile(`\\\\x([0-9a-f]*)`)
	// timestampRE is a timestamptz as pg_dump writes it: its microseconds are 6 digits too.
	timestampRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d+)?([+-]\d{2}(:\d{2})?)?`)
)

// findCode says where code appears in a dump ("" when nowhere): as the 6 digits standing alone in
// text or JSON (a message body, params), or inside a bytea as a protobuf string (an outbox payload,
// length 6 then the digits) or as digits standing alone (text kept as bytes).
func findCode(dump []byte, code string) string {
	alone := regexp.MustCompile(`(^|[^0-9A-Za-z])` + code + `([^0-9A-Za-z]|$)`)
	for _, m := range byteaRE.FindAllSubmatch(dump, -1) {
		b, err := hex.DecodeString(string(m[1]))
		if err != nil {
			continue
		}
		if bytes.Contains(b, append([]byte{6}, code...)) || alone.Match(b) {
			return "in a bytea value"
		}
	}
	text := timestampRE.ReplaceAll(byteaRE.ReplaceAll(dump, nil), nil)
	if loc := alone.FindIndex(text); loc != nil {
		line := text[bytes.LastIndexByte(text[:loc[0]], '\n')+1:]
		if i := bytes.IndexByte(line, '\t'); i > 0 {
			line = line[:i]
		}
		return "in a row beginning " + strings.TrimSpace(string(line[:min(len(line), 40)]))
	}
	return ""
}
