package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// internalToken is filing's token in the security tests.
const internalToken = "e2e-filing-token-0123456789abcdef0123456789"

// The verification binary with split listeners, API keys, an internal token and a tight Verify limit:
// the flags reach the edge of a real process.
func TestSecurityEdgeOfAProcess(t *testing.T) {
	dir := t.TempDir()
	sum := sha256.Sum256([]byte("portal-key-1"))
	keys := filepath.Join(dir, "api-keys")
	token := filepath.Join(dir, "internal-token")
	if err := os.WriteFile(keys, []byte("portal-a:"+hex.EncodeToString(sum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenSum := sha256.Sum256([]byte(internalToken))
	callers := filepath.Join(dir, "internal-callers")
	if err := os.WriteFile(token, []byte(internalToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(callers, []byte("filing:"+hex.EncodeToString(tokenSum[:])+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pubAddr, intAddr := freeAddr(t), freeAddr(t)
	s := &suite{t: t, procs: map[string]*proc{}}
	p := &proc{name: "verification", out: &bytes.Buffer{}, args: []string{"--store=memory", "--grpc-addr=" + pubAddr,
		"--internal-grpc-addr=" + intAddr, "--portal-auth=api-key", "--api-keys-file=" + keys, "--internal-token-file=" + token, "--internal-callers-file=" + callers,
		"--verify-rate=0.01", "--verify-burst=1", "--min-response-time=0"}}
	p.start(t)
	s.procs["verification"] = p
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _, _ = p.cmd.Process.Wait() })
	pubConn, intConn := s.dial(pubAddr), s.dial(intAddr)
	s.waitHealthy("verification", pubConn)
	s.waitHealthy("verification", intConn)

	call := func(md ...string) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		t.Cleanup(cancel)
		return metadata.AppendToOutgoingContext(ctx, md...)
	}
	pub := verificationv1.NewVerificationServiceClient(pubConn)
	req := &verificationv1.VerifyRequest{Phone: "13812345678", Code: "123456", IdTail: "31002X"}
	check := func(what string, err error, code codes.Code, reason string) {
		t.Helper()
		if status.Code(err) != code || rpc.Reason(err) != reason {
			t.Errorf("%s: %v (reason %q), want %v %s\n%s", what, err, rpc.Reason(err), code, reason, tail(p.Output(), 2000))
		}
	}
	_, err := pub.Verify(call(), req)
	check("Verify without a key", err, codes.Unauthenticated, rpc.ReasonCredentialMissing)
	_, err = pub.Verify(call("x-api-key", "portal-key-1"), req)
	check("Verify with the key reaches the handler", err, codes.NotFound, rpc.ReasonName(verificationv1.ErrorReason_ERROR_REASON_VERIFICATION_NOT_MATCHED))
	_, err = pub.Verify(call("x-api-key", "portal-key-1"), req)
	check("Verify over the limit", err, codes.ResourceExhausted, rpc.ReasonRateLimited)
	if rpc.RetryDelay(err) <= 0 {
		t.Errorf("no retry delay: %v", err)
	}

	cancelReq := &verificationv1.CancelSessionRequest{RequestId: "c1", OrderId: "ord_unknown"}
	_, err = verificationv1.NewVerificationInternalServiceClient(pubConn).CancelSession(call("authorization", "Bearer "+internalToken), cancelReq)
	check("internal RPC on the public listener", err, codes.Unimplemented, "")
	internal := verificationv1.NewVerificationInternalServiceClient(intConn)
	_, err = internal.CancelSession(call("authorization", "Bearer portal-key-1"), cancelReq)
	check("portal key on an internal RPC", err, codes.Unauthenticated, rpc.ReasonCredentialInvalid)
	_, err = internal.CancelSession(call("authorization", "Bearer "+internalToken), cancelReq)
	if c := status.Code(err); c == codes.Unauthenticated || c == codes.Unimplemented || c == codes.Unavailable {
		t.Errorf("internal token on the internal listener: %v", err)
	}
	if bytes.Contains([]byte(p.Output()), []byte("portal-key-1")) || bytes.Contains([]byte(p.Output()), []byte(internalToken)) {
		t.Error("a credential appears in the log")
	}
}

// On PostgreSQL a service with open defaults refuses to start and names each; it never reaches the database.
func TestOpenDefaultsOnPostgresRefuseToStart(t *testing.T) {
	// The seal key is hex of "example seal key - replace me!!!", as copied from an example.
	out, err := exec.Command(filepath.Join(binDir, "sms-dispatch"), "--database-url=postgres://nobody@127.0.0.1:1/none",
		"--grpc-addr="+freeAddr(t), "--seal-keys=s1:6578616d706c65207365616c206b6579202d207265706c616365206d65212121").CombinedOutput()
	if err == nil {
		t.Fatalf("sms-dispatch started with open defaults:\n%s", out)
	}
	for _, want := range []string{"open defaults", "--sms-provider=webhook", "--internal-callers-file", "--seal-keys", "--insecure-dev"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the refusal does not name %q:\n%s", want, out)
		}
	}
}

// Least privilege across real processes: each internal method admits only its callers. The suite runs
// with one token per service; sms-dispatch's or an operator's token cannot approve or return an order,
// a portal key is no internal credential, and the reviewer records the outcome.
func TestInternalMethodsAdmitOnlyTheirCallers(t *testing.T) {
	s := startSuite(t, options{})
	principal := person("钱七", "13812345678")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "acl.cn", Person: principal}))
	sent := s.waitCodes(1, phoneA)

	mark := &filingv1.MarkVerifiedRequest{RequestId: "acl-mark", OrderId: order.OrderId, Submission: order.Submission}
	ret := &filingv1.ReturnOrderRequest{RequestId: "acl-return", OrderId: order.OrderId, Submission: order.Submission,
		Reason: filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT}
	denied := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.PermissionDenied || rpc.Reason(err) != rpc.ReasonCallerNotAllowed {
			t.Errorf("%s: %v (reason %q), want PermissionDenied %s", what, err, rpc.Reason(err), rpc.ReasonCallerNotAllowed)
		}
	}
	for _, id := range []string{"sms-dispatch", "deadline", "operator-e2e", "reviewer-e2e"} {
		_, err := s.FilingInternal.MarkVerified(as(ctx(t), id), mark)
		denied(id+" MarkVerified", err)
		_, err = s.FilingInternal.ReturnOrder(as(ctx(t), id), ret)
		denied(id+" ReturnOrder", err)
	}
	// The batch forms admit verification alone, CancelDeadlines too (filing cancels one by one).
	for _, id := range []string{"sms-dispatch", "deadline", "filing", "operator-e2e", "reviewer-e2e"} {
		_, err := s.FilingInternal.MarkVerifiedBatch(as(ctx(t), id), &filingv1.MarkVerifiedBatchRequest{Requests: []*filingv1.MarkVerifiedRequest{mark}})
		denied(id+" MarkVerifiedBatch", err)
		_, err = s.FilingInternal.ReturnOrderBatch(as(ctx(t), id), &filingv1.ReturnOrderBatchRequest{Requests: []*filingv1.ReturnOrderRequest{ret}})
		denied(id+" ReturnOrderBatch", err)
		_, err = s.Deadline.CancelDeadlines(as(ctx(t), id), &deadlinev1.CancelDeadlinesRequest{Requests: []*deadlinev1.CancelDeadlineRequest{
			{RequestId: "acl-cancel", OrderId: order.OrderId, Submission: order.Submission}}})
		denied(id+" CancelDeadlines", err)
	}
	_, err := s.FilingInternal.MarkVerified(metadata.AppendToOutgoingContext(ctx(t), "authorization", "Bearer "+portalKey), mark)
	if status.Code(err) != codes.Unauthenticated {
		t.Errorf("a portal key on MarkVerified: %v, want Unauthenticated", err)
	}
	_, err = s.VerifyInternal.CloseIfIncomplete(as(ctx(t), "sms-dispatch"),
		&verificationv1.CloseIfIncompleteRequest{RequestId: "acl-close", OrderId: order.OrderId, Submission: order.Submission})
	denied("sms-dispatch CloseIfIncomplete", err)
	for _, id := range []string{"sms-dispatch", "filing", "verification", "operator-e2e", "reviewer-e2e"} {
		_, err = s.VerifyInternal.CloseIfIncompleteBatch(as(ctx(t), id), &verificationv1.CloseIfIncompleteBatchRequest{
			Requests: []*verificationv1.CloseIfIncompleteRequest{{RequestId: "acl-close", OrderId: order.OrderId, Submission: order.Submission}}})
		denied(id+" CloseIfIncompleteBatch", err)
	}
	// Only sms-dispatch reports deliveries (TestUndeliveredCodeNeverPasses shows it may).
	for _, id := range []string{"filing", "verification", "deadline", "operator-e2e", "reviewer-e2e"} {
		_, err = s.VerifyInternal.ReportDelivery(as(ctx(t), id), &verificationv1.ReportDeliveryRequest{RequestId: "acl-report-" + id,
			MessageId: "vc-x-v1-1", OrderId: order.OrderId, State: verificationv1.DeliveryState_DELIVERY_STATE_FAILED})
		denied(id+" ReportDelivery", err)
	}
	got, err := s.Filing.GetOrder(ctx(t), &filingv1.GetOrderRequest{OrderId: order.OrderId})
	if err != nil || got.Order.State != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
		t.Fatalf("after the refused calls the order is %v, %v", got, err)
	}

	// The order still goes its way with the services' own identities, and the reviewer approves it.
	if _, err := s.verify(phoneA, sent[phoneA], tailOf(principal)); err != nil {
		t.Fatalf("verify: %v", err)
	}
	s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
	review := &filingv1.RecordReviewOutcomeRequest{RequestId: "acl-review", OrderId: order.OrderId,
		Outcome: filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED}
	_, err = s.FilingInternal.RecordReviewOutcome(as(ctx(t), "verification"), review)
	denied("verification RecordReviewOutcome", err)
	if _, err := s.FilingInternal.RecordReviewOutcome(as(ctx(t), "reviewer-e2e"), review); err != nil {
		t.Fatalf("the reviewer's RecordReviewOutcome: %v", err)
	}
}

// icpctl against the suite as production runs it: without credentials every call is refused with
// exit code 8 and a clear message; with the portal's API key and the operator's token the status
// (public GetOrder, internal ListMessages and GetDeadline) is shown; the operator cannot approve.
func TestIcpctlWithCredentials(t *testing.T) {
	s := startSuite(t, options{})
	principal := person("孙八", "13812345678")
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "cli.cn", Person: principal}))
	dir := t.TempDir()
	keyFile, tokenFile := filepath.Join(dir, "key"), filepath.Join(dir, "token")
	if err := os.WriteFile(keyFile, []byte(portalKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tokenFile, []byte(operatorToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	icpctl := func(args ...string) (string, int) {
		t.Helper()
		addrs := []string{"--filing-addr=" + s.addrs["filing"], "--verification-addr=" + s.addrs["verification"],
			"--sms-dispatch-addr=" + s.addrs["sms-dispatch"], "--deadline-addr=" + s.addrs["deadline"]}
		out, err := exec.Command(filepath.Join(binDir, "icpctl"), append(addrs, args...)...).CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	if out, code := icpctl("status", order.OrderId); code != 8 || !strings.Contains(out, "Unauthenticated") {
		t.Errorf("status without credentials: exit %d\n%s", code, out)
	}
	out, code := icpctl("--api-key-file="+keyFile, "--token-file="+tokenFile, "status", order.OrderId)
	if code != 0 || !strings.Contains(out, order.OrderId) || !strings.Contains(out, "AWAITING_VERIFICATION") {
		t.Errorf("status with credentials: exit %d\n%s", code, out)
	}
	if out, code := icpctl("--api-key-file="+keyFile, "--token-file="+tokenFile, "approve", order.OrderId); code != 8 ||
		!strings.Contains(out, rpc.ReasonCallerNotAllowed) {
		t.Errorf("approve as the operator: exit %d\n%s", code, out)
	}
	if strings.Contains(out, portalKey) || strings.Contains(out, operatorToken) {
		t.Error("icpctl printed a credential")
	}
}
