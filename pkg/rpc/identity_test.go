package rpc

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/icpverify/icpverify/pkg/config"
)

// sms-dispatch's own token reaches the edge, but CancelSession admits only filing.
func TestInternalCallerOutsideTheMethodsCallersIsRefused(t *testing.T) {
	t.Parallel()
	smsToken := "sms-dispatch-token-0123456789abcdef0123"
	sv := serve(t, config.Security{InternalCallersFile: s(callersFile(t, map[string]string{"filing": internalToken,
		"sms-dispatch": smsToken, "filing-2": "filing-replica-token-0123456789abcdef"}))})
	conn := dial(t, sv.internal, clientOpts{})
	err := cancelSession(t, conn, "authorization", "Bearer "+smsToken)
	wantCode(t, "sms-dispatch on CancelSession", err, codes.PermissionDenied, ReasonCallerNotAllowed)
	if !strings.Contains(err.Error(), "CancelSession") || !strings.Contains(err.Error(), `"sms-dispatch"`) {
		t.Errorf("message names neither the method nor the role: %v", err)
	}
	wantCode(t, "filing on CancelSession", cancelSession(t, conn, "authorization", "Bearer "+internalToken), codes.OK, "")
	wantCode(t, "filing-2 (role filing) on CancelSession", cancelSession(t, conn, "authorization", "Bearer filing-replica-token-0123456789abcdef"), codes.OK, "")
	if c := sv.api.lastFull(); c.ID != "internal:filing-2" || c.Identity != "filing-2" || c.Role != RoleFiling {
		t.Errorf("caller = %+v", c)
	}
}

func TestRoleOf(t *testing.T) {
	for id, want := range map[string]string{"filing": "filing", "operator-alice": "operator", "sms-dispatch": "sms-dispatch",
		"sms-dispatch-2": "sms-dispatch", "reviewer-bob": "reviewer", "intruder-x": "intruder"} {
		if got := RoleOf(id); got != want {
			t.Errorf("RoleOf(%q) = %q, want %q", id, got, want)
		}
	}
}

func TestInternalMethodWithoutCallersOptionPanics(t *testing.T) {
	srv := NewServer(zap.NewNop())
	defer srv.Stop()
	defer func() {
		if recover() == nil {
			t.Error("registering an internal method without the callers option did not panic")
		}
	}()
	desc := &grpc.ServiceDesc{ServiceName: "icp.test.v1.Bare", HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{MethodName: "Do"}}}
	srv.Internal().RegisterService(desc, struct{}{})
}

func TestOwnTokenRules(t *testing.T) {
	for name, data := range map[string]string{"short": "abc\n", "placeholder": "changeme-changeme-changeme-changeme-1",
		"one character": strings.Repeat("a", 40), "empty": "\n\n"} {
		if _, err := parseOwnToken([]byte(data)); err == nil {
			t.Errorf("%s token accepted", name)
		}
	}
	if tok, err := parseOwnToken([]byte("\n" + internalToken + "\nsecond\n")); err != nil || tok != internalToken {
		t.Errorf("got %q, %v", tok, err)
	}
}

func TestJWTKeyFileThatIsNeitherPEMNorHS256IsRefused(t *testing.T) {
	for name, data := range map[string]string{"bare secret": "0123456789abcdef0123456789abcdef0123",
		"jwks": `{"keys":[]}`, "ssh key": "ssh-ed25519 AAAAC3Nza", "short hs256": "hs256:short"} {
		if _, err := parseJWTKey([]byte(data)); err == nil {
			t.Errorf("%s accepted as a JWT key", name)
		}
	}
}

func TestAPIKeyCrossTenantFlag(t *testing.T) {
	keys, err := parseAPIKeys([]byte("authority:" + strings.Repeat("ab", 32) + ":cross-tenant\nportal-a:" + strings.Repeat("cd", 32) + "\n"))
	if err != nil || !keys[0].crossTenant || keys[1].crossTenant {
		t.Fatalf("%+v, %v", keys, err)
	}
	if _, err := parseAPIKeys([]byte("p:" + strings.Repeat("ab", 32) + ":admin\n")); err == nil {
		t.Error("an unknown third field was accepted")
	}
}
