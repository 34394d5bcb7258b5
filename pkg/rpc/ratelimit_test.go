package rpc

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
)

// TestRateLimitPerTenant: with PerTenant, two JWT subjects of one tenant share its bucket (without it
// each subject was a bucket of its own, security review L5); another tenant has its own.
func TestRateLimitPerTenant(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef-hs256")
	sec := jwtSecurity(writeFile(t, t.TempDir(), "jwt.key", append([]byte("hs256:"), secret...)))
	sec.InternalGRPCAddr = s("split")
	sv := serve(t, sec, RateLimit{Method: pb.VerificationService_Verify_FullMethodName, Rate: 0.01, Burst: 2, PerTenant: true})
	conn := dial(t, sv.public, clientOpts{})
	token := func(sub, tenant string) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "tenant": tenant, "iss": "https://portal.example",
			"aud": "icpverify", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	wantCode(t, "a's first subject", verify(t, conn, "authorization", token("user-1", "portal-a")), codes.OK, "")
	wantCode(t, "a's second subject", verify(t, conn, "authorization", token("user-2", "portal-a")), codes.OK, "")
	err := verify(t, conn, "authorization", token("user-3", "portal-a"))
	wantCode(t, "a's third subject, past the tenant's burst", err, codes.ResourceExhausted, ReasonRateLimited)
	if d := RetryDelay(err); d <= 0 {
		t.Errorf("retry delay %v, want > 0", d)
	}
	wantCode(t, "tenant b", verify(t, conn, "authorization", token("user-1", "portal-b")), codes.OK, "")
}

func TestRateLimitKey(t *testing.T) {
	perTenant, perCaller := RateLimit{PerTenant: true}, RateLimit{}
	for _, tt := range []struct {
		l    RateLimit
		c    Caller
		want string
	}{
		{perTenant, Caller{ID: "jwt:user-1", Tenant: "portal-a"}, "tenant:portal-a"},
		{perTenant, Caller{ID: "apikey:k1", Tenant: "portal-a"}, "tenant:portal-a"},
		// Without portal auth every caller is the development tenant: each IP keeps its bucket.
		{perTenant, Caller{ID: "ip:192.0.2.1", Tenant: DevTenant}, "ip:192.0.2.1"},
		{perTenant, Caller{ID: "internal:filing", Identity: "filing"}, "internal:filing"},
		{perCaller, Caller{ID: "jwt:user-1", Tenant: "portal-a"}, "jwt:user-1"},
	} {
		if got := tt.l.key(tt.c); got != tt.want {
			t.Errorf("key(%+v) with PerTenant=%v = %q, want %q", tt.c, tt.l.PerTenant, got, tt.want)
		}
	}
}
