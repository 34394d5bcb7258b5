package rpc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/icpverify/icpverify/pkg/errs"
)

// The ErrorInfo reasons of refused credentials.
const (
	ReasonCredentialMissing         = "CREDENTIAL_MISSING"
	ReasonCredentialInvalid         = "CREDENTIAL_INVALID"
	ReasonClientCertificateRequired = "CLIENT_CERTIFICATE_REQUIRED"
	ReasonRateLimited               = "RATE_LIMITED"
)

// DevTenant is the one tenant of every public caller when portal auth is off (development).
const DevTenant = "dev"

// Caller is who made an RPC, as far as the edge could tell. ID never holds a secret: "apikey:<key id>",
// "jwt:<subject>", "cert:<common name>", "internal-token", or "ip:<address>" for unauthenticated callers.
type Caller struct {
	ID string
	// Tenant is the hosting provider (接入商) a public caller acts for: the API key id, the JWT's tenant
	// claim, or DevTenant without portal auth. Empty for internal callers.
	Tenant string
	// CrossTenant callers (the authority's own portal) see every tenant's orders and challenges.
	CrossTenant bool
}

type callerKey struct{}

// CallerFrom returns the caller the edge put into ctx (zero without one).
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// peerIP is the caller's IP address (no port), the identity of callers that present no credential.
func peerIP(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return "unknown"
	}
	if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
		return host
	}
	return p.Addr.String()
}

// bearer returns the credential of an "authorization: Bearer <x>" header, or of "x-api-key" when
// apiKeyHeader is set.
func bearer(ctx context.Context, apiKeyHeader bool) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if len(v) > 7 && strings.EqualFold(v[:7], "bearer ") {
			return strings.TrimSpace(v[7:])
		}
	}
	if apiKeyHeader {
		if v := md.Get("x-api-key"); len(v) > 0 {
			return strings.TrimSpace(v[0])
		}
	}
	return ""
}

func credentialMissing() error {
	return errs.Unauthenticated(ReasonCredentialMissing, "this RPC needs a credential")
}

func credentialInvalid() error {
	return errs.Unauthenticated(ReasonCredentialInvalid, "the credential is not valid for this RPC")
}

// authenticator checks the credential of one class of RPCs (public or internal).
type authenticator interface {
	authenticate(ctx context.Context) (Caller, error)
}

// anonymous accepts everybody; the caller is its IP address.
type anonymous struct{}

func (anonymous) authenticate(ctx context.Context) (Caller, error) {
	return Caller{ID: "ip:" + peerIP(ctx), Tenant: DevTenant}, nil
}

// ---- API keys ----

type apiKey struct {
	id   string
	hash [sha256.Size]byte
}

// parseAPIKeys reads lines "key_id:sha256-hex-of-key"; blank lines and lines starting with # are skipped.
func parseAPIKeys(data []byte) ([]apiKey, error) {
	var keys []apiKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, hexHash, ok := strings.Cut(line, ":")
		h, err := hex.DecodeString(strings.TrimSpace(hexHash))
		if !ok || strings.TrimSpace(id) == "" || err != nil || len(h) != sha256.Size {
			return nil, fmt.Errorf("line %d: want key_id:sha256-hex-of-key", n)
		}
		k := apiKey{id: strings.TrimSpace(id)}
		copy(k.hash[:], h)
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no API key")
	}
	return keys, sc.Err()
}

type apiKeyAuth struct{ keys *reloading[[]apiKey] }

func (a apiKeyAuth) authenticate(ctx context.Context) (Caller, error) {
	presented := bearer(ctx, true)
	if presented == "" {
		return Caller{}, credentialMissing()
	}
	sum := sha256.Sum256([]byte(presented))
	match := -1
	keys := a.keys.get()
	for i := range keys { // every entry is compared, in constant time each
		if subtle.ConstantTimeCompare(sum[:], keys[i].hash[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Caller{}, credentialInvalid()
	}
	return Caller{ID: "apikey:" + keys[match].id, Tenant: keys[match].id}, nil
}

// ---- JWT ----

type jwtKey struct {
	key     any
	methods []string
}

// parseJWTKey reads a PEM public key (PKIX, PKCS#1 RSA, or a certificate) or, without PEM, an HS256 secret.
func parseJWTKey(data []byte) (jwtKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		secret := bytes.TrimSpace(data)
		if len(secret) < 32 {
			return jwtKey{}, errors.New("an HS256 secret must be at least 32 bytes")
		}
		return jwtKey{key: secret, methods: []string{"HS256"}}, nil
	}
	var pub any
	var err error
	switch block.Type {
	case "CERTIFICATE":
		var c *x509.Certificate
		if c, err = x509.ParseCertificate(block.Bytes); err == nil {
			pub = c.PublicKey
		}
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	}
	if err != nil {
		return jwtKey{}, err
	}
	switch pub.(type) {
	case *rsa.PublicKey:
		return jwtKey{key: pub, methods: []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}}, nil
	case *ecdsa.PublicKey:
		return jwtKey{key: pub, methods: []string{"ES256", "ES384", "ES512"}}, nil
	case ed25519.PublicKey:
		return jwtKey{key: pub, methods: []string{"EdDSA"}}, nil
	}
	return jwtKey{}, fmt.Errorf("unsupported public key %T", pub)
}

type jwtAuth struct {
	key      *reloading[jwtKey]
	issuer   string
	audience string
}

func (a jwtAuth) authenticate(ctx context.Context) (Caller, error) {
	raw := bearer(ctx, false)
	if raw == "" {
		return Caller{}, credentialMissing()
	}
	k := a.key.get()
	opts := []jwt.ParserOption{jwt.WithValidMethods(k.methods), jwt.WithExpirationRequired(), jwt.WithLeeway(30 * time.Second)}
	if a.issuer != "" {
		opts = append(opts, jwt.WithIssuer(a.issuer))
	}
	if a.audience != "" {
		opts = append(opts, jwt.WithAudience(a.audience))
	}
	var claims jwt.RegisteredClaims
	tok, err := jwt.ParseWithClaims(raw, &claims, func(*jwt.Token) (any, error) { return k.key, nil }, opts...)
	if err != nil || !tok.Valid || claims.Subject == "" {
		return Caller{}, credentialInvalid()
	}
	return Caller{ID: "jwt:" + claims.Subject, Tenant: claims.Subject}, nil
}

// ---- internal credential ----

// internalAuth requires what is configured of: a verified client certificate, a shared token.
type internalAuth struct {
	requireCert bool
	tokens      *reloading[[][sha256.Size]byte] // nil: no token
}

func parseTokens(data []byte) ([][sha256.Size]byte, error) {
	var out [][sha256.Size]byte
	for _, line := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(line); t != "" {
			out = append(out, sha256.Sum256([]byte(t)))
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no token")
	}
	return out, nil
}

// readTokens returns the tokens of a token file, first (the one peer calls send) first.
func readTokens(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		if t := strings.TrimSpace(line); t != "" {
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no token", path)
	}
	return out, nil
}

func (a internalAuth) authenticate(ctx context.Context) (Caller, error) {
	c := Caller{ID: "ip:" + peerIP(ctx)}
	if a.requireCert {
		cn, ok := verifiedClient(ctx)
		if !ok {
			return Caller{}, errs.Unauthenticated(ReasonClientCertificateRequired, "internal RPCs need a verified client certificate")
		}
		c.ID = "cert:" + cn
	}
	if a.tokens != nil {
		presented := bearer(ctx, false)
		if presented == "" {
			return Caller{}, credentialMissing()
		}
		sum := sha256.Sum256([]byte(presented))
		ok := 0
		for _, t := range a.tokens.get() {
			ok |= subtle.ConstantTimeCompare(sum[:], t[:])
		}
		if ok != 1 {
			return Caller{}, credentialInvalid()
		}
		if !a.requireCert {
			c.ID = "internal-token"
		}
	}
	return c, nil
}

// verifiedClient returns the subject of the client certificate the TLS handshake verified.
func verifiedClient(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	leaf := info.State.VerifiedChains[0][0]
	if leaf.Subject.CommonName != "" {
		return leaf.Subject.CommonName, true
	}
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames[0], true
	}
	return "client", true
}

// tokenCreds send the first internal token on every peer call.
type tokenCreds struct {
	tokens *reloading[[]string]
}

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.tokens.get()[0]}, nil
}

func (tokenCreds) RequireTransportSecurity() bool { return false }

func readFile[T any](parse func([]byte) (T, error), path string) func() (T, error) {
	return func() (T, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			var zero T
			return zero, err
		}
		return parse(data)
	}
}

func newPortalAuth(log *zap.Logger, mode, apiKeysFile, jwtKeyFile, issuer, audience string) (authenticator, error) {
	switch mode {
	case "", "none":
		return anonymous{}, nil
	case "api-key":
		keys, err := newReloading(log, "api keys", readFile(parseAPIKeys, apiKeysFile), apiKeysFile)
		if err != nil {
			return nil, err
		}
		return apiKeyAuth{keys: keys}, nil
	case "jwt":
		key, err := newReloading(log, "jwt key", readFile(parseJWTKey, jwtKeyFile), jwtKeyFile)
		if err != nil {
			return nil, err
		}
		return jwtAuth{key: key, issuer: issuer, audience: audience}, nil
	}
	return nil, fmt.Errorf("--portal-auth %q: use none, api-key or jwt", mode)
}
