package rpc

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
)

func TestJWT(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef-hs256")
	dir := t.TempDir()
	sec := jwtSecurity(writeFile(t, dir, "jwt.key", append([]byte("hs256:"), secret...)))
	sec.InternalCallersFile = s(callersFile(t, map[string]string{"filing": internalToken}))
	sv := serve(t, sec)
	conn := dial(t, sv.public, clientOpts{})
	sign := func(m jwt.SigningMethod, key any, claims jwt.MapClaims) string {
		tok, err := jwt.NewWithClaims(m, claims).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return "Bearer " + tok
	}
	good := func() jwt.MapClaims {
		return jwt.MapClaims{"sub": "user-1", "tenant": "portal-a", "iss": "https://portal.example", "aud": "icpverify",
			"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}
	}
	wantCode(t, "valid", verify(t, conn, "authorization", sign(jwt.SigningMethodHS256, secret, good())), codes.OK, "")
	if c := sv.api.lastCaller(); c != "jwt:user-1" {
		t.Errorf("caller = %q", c)
	}
	if c := sv.api.lastFull(); c.Tenant != "portal-a" || c.CrossTenant {
		t.Errorf("caller = %+v, want tenant portal-a, not cross-tenant", c)
	}
	c := good()
	c["cross_tenant"] = true
	wantCode(t, "cross-tenant claim", verify(t, conn, "authorization", sign(jwt.SigningMethodHS256, secret, c)), codes.OK, "")
	if c := sv.api.lastFull(); !c.CrossTenant {
		t.Errorf("caller = %+v, want cross-tenant", c)
	}
	wantCode(t, "missing", verify(t, conn), codes.Unauthenticated, ReasonCredentialMissing)
	bad := map[string]string{}
	c = good()
	c["iss"] = "https://evil.example"
	bad["wrong issuer"] = sign(jwt.SigningMethodHS256, secret, c)
	c = good()
	c["aud"] = "other"
	bad["wrong audience"] = sign(jwt.SigningMethodHS256, secret, c)
	c = good()
	c["exp"] = time.Now().Add(-time.Hour).Unix()
	bad["expired"] = sign(jwt.SigningMethodHS256, secret, c)
	c = good()
	delete(c, "exp")
	bad["no expiry"] = sign(jwt.SigningMethodHS256, secret, c)
	c = good()
	delete(c, "sub")
	bad["no subject"] = sign(jwt.SigningMethodHS256, secret, c)
	c = good()
	delete(c, "iat")
	bad["no issued-at"] = sign(jwt.SigningMethodHS256, secret, c)
	c = good()
	c["exp"] = time.Now().Add(2 * time.Hour).Unix()
	bad["lifetime over --jwt-max-lifetime"] = sign(jwt.SigningMethodHS256, secret, c)
	c = good()
	delete(c, "tenant")
	bad["no tenant claim"] = sign(jwt.SigningMethodHS256, secret, c)
	c = good()
	c["cross_tenant"] = "true"
	bad["cross-tenant claim not a boolean"] = sign(jwt.SigningMethodHS256, secret, c)
	bad["wrong secret"] = sign(jwt.SigningMethodHS256, []byte("another-secret-another-secret-another"), good())
	bad["alg none"] = sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, good())
	for name, authz := range bad {
		wantCode(t, name, verify(t, conn, "authorization", authz), codes.Unauthenticated, ReasonCredentialInvalid)
	}
	// A valid portal JWT is not the internal credential.
	wantCode(t, "portal JWT on an internal RPC", cancelSession(t, conn, "authorization", sign(jwt.SigningMethodHS256, secret, good())),
		codes.Unauthenticated, ReasonCredentialInvalid)
}

func TestJWTWithAnRSAPublicKey(t *testing.T) {
	t.Parallel()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&k.PublicKey)
	dir := t.TempDir()
	sec := jwtSecurity(writeFile(t, dir, "jwt.pem", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	sec.InternalGRPCAddr = s("split")
	sv := serve(t, sec)
	conn := dial(t, sv.public, clientOpts{})
	claims := jwt.MapClaims{"sub": "portal-b", "tenant": "portal-b", "iss": "https://portal.example", "aud": "icpverify",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}
	tok, _ := jwt.NewWithClaims(jwt.SigningMethodRS256, claims).SignedString(k)
	wantCode(t, "RS256", verify(t, conn, "authorization", "Bearer "+tok), codes.OK, "")
	// The public key must not be usable as an HMAC secret (algorithm confusion).
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	wantCode(t, "HS256 with the public key", verify(t, conn, "authorization", "Bearer "+hs), codes.Unauthenticated, ReasonCredentialInvalid)
}
