package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// The suite runs as production does: every service with its own internal token, every internal method
// admitting only its callers (the icp.auth.v1.callers table), portals with API keys. The test speaks
// as one portal on the public services and as an operator on the internal ones.
const (
	portalKey = "e2e-portal-key-0123456789abcdef0123456789"
	// otherPortalKey is a second tenant's key: it must see none of portal-e2e's orders.
	otherPortalKey = "e2e-other-portal-key-0123456789abcdef0123"
	operatorToken  = "e2e-operator-token-0123456789abcdef012345"
	// authorityKey is the authority's own portal (cross-tenant): the key the edge's page calls with.
	authorityKey = "e2e-authority-portal-key-0123456789abcdef"
)

// serviceToken is the internal token of a service (or of a role the test plays).
func serviceToken(identity string) string {
	return "e2e-" + identity + "-token-0123456789abcdef0123456789"
}

// identities are the internal callers every service knows: the four services and the test's operator.
var identities = []string{"filing", "verification", "sms-dispatch", "deadline", "operator-e2e", "reviewer-e2e"}

func tokenOf(identity string) string {
	if identity == "operator-e2e" {
		return operatorToken
	}
	return serviceToken(identity)
}

// credentials writes the token, callers and API-key files into dir and returns each service's flags.
func credentials(t *testing.T, dir string) map[string][]string {
	t.Helper()
	hexSum := func(s string) string { sum := sha256.Sum256([]byte(s)); return hex.EncodeToString(sum[:]) }
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	var callers strings.Builder
	for _, id := range identities {
		callers.WriteString(id + ":" + hexSum(tokenOf(id)) + "\n")
	}
	callersFile := write("internal-callers", callers.String())
	keysFile := write("api-keys", "portal-e2e:"+hexSum(portalKey)+"\nportal-other:"+hexSum(otherPortalKey)+
		"\nauthority:"+hexSum(authorityKey)+":cross-tenant\n")
	flags := map[string][]string{}
	for _, name := range services {
		flags[name] = []string{"--internal-token-file=" + write(name+".token", serviceToken(name)+"\n"),
			"--internal-callers-file=" + callersFile}
	}
	for _, name := range []string{"filing", "verification"} {
		flags[name] = append(flags[name], "--portal-auth=api-key", "--api-keys-file="+keysFile)
	}
	return flags
}

// publicServices are the services portals call with an API key; every other method is internal.
var publicServices = []string{"/icp.filing.v1.FilingService/", "/icp.verification.v1.VerificationService/"}

// asCaller adds the credential a method needs: the portal's API key on the public services, else the
// operator's token, unless the call already carries one (a test speaking as another identity).
func asCaller(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	if md, ok := metadata.FromOutgoingContext(ctx); ok && (len(md.Get("authorization")) > 0 || len(md.Get("x-api-key")) > 0) {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	for _, p := range publicServices {
		if strings.HasPrefix(method, p) {
			return invoker(metadata.AppendToOutgoingContext(ctx, "x-api-key", portalKey), method, req, reply, cc, opts...)
		}
	}
	return invoker(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+operatorToken), method, req, reply, cc, opts...)
}

// as makes ctx speak as an internal identity.
func as(ctx context.Context, identity string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tokenOf(identity))
}
