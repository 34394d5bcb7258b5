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

	"github.com/icpverify/icpverify/pkg/config"
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
// "jwt:<subject>", "internal:<identity>" (a token of --internal-callers-file), "cert:<identity>" (a
// client certificate), or "ip:<address>" for callers the edge does not ask for a credential.
type Caller struct {
	ID string
	// Identity is an internal caller's name (filing, operator-alice, ...); empty for public callers
	// and when no internal credential is configured (development).
	Identity string
	// Role is what Identity may do (see RoleOf); the callers option of each internal method lists the
	// roles it admits.
	Role string
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
	id          string
	hash        [sha256.Size]byte
	crossTenant bool
}

// crossTenantFlag marks an API key of the authority's own portal, which sees every tenant.
const crossTenantFlag = "cross-tenant"

// parseAPIKeys reads lines "key_id:sha256-hex-of-key[:cross-tenant]"; blank lines and lines starting
// with # are skipped.
func parseAPIKeys(data []byte) ([]apiKey, error) {
	var keys []apiKey
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, ":")
		var h []byte
		err := errors.New("want key_id:sha256-hex-of-key[:cross-tenant]")
		if len(parts) == 2 || len(parts) == 3 {
			h, err = hex.DecodeString(strings.TrimSpace(parts[1]))
		}
		if err != nil || strings.TrimSpace(parts[0]) == "" || len(h) != sha256.Size {
			return nil, fmt.Errorf("line %d: want key_id:sha256-hex-of-key[:cross-tenant]", n)
		}
		k := apiKey{id: strings.TrimSpace(parts[0])}
		if len(parts) == 3 {
			if strings.TrimSpace(parts[2]) != crossTenantFlag {
				return nil, fmt.Errorf("line %d: the third field may only be %q", n, crossTenantFlag)
			}
			k.crossTenant = true
		}
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
	return Caller{ID: "apikey:" + keys[match].id, Tenant: keys[match].id, CrossTenant: keys[match].crossTenant}, nil
}

// ---- JWT ----

type jwtKey struct {
	key     any
	methods []string
}

// hs256Prefix marks an HS256 secret in --jwt-key-file. Without it only PEM is accepted, so a public
// value dropped in by mistake (a JWKS, an ssh key) never becomes the HMAC secret anyone could sign with.
const hs256Prefix = "hs256:"

// parseJWTKey reads a PEM public key (PKIX, PKCS#1 RSA, or a certificate) or "hs256:<secret>".
func parseJWTKey(data []byte) (jwtKey, error) {
	trimmed := bytes.TrimSpace(data)
	if rest, ok := bytes.CutPrefix(trimmed, []byte(hs256Prefix)); ok {
		secret := bytes.TrimSpace(rest)
		if len(secret) < 32 {
			return jwtKey{}, errors.New("the hs256: secret must be at least 32 bytes")
		}
		if config.IsPlaceholder(string(secret)) {
			return jwtKey{}, errors.New("the hs256: secret is a placeholder: generate one with openssl rand -hex 32")
		}
		return jwtKey{key: secret, methods: []string{"HS256"}}, nil
	}
	block, _ := pem.Decode(trimmed)
	if block == nil {
		return jwtKey{}, errors.New(`neither a PEM public key or certificate nor "hs256:<secret of at least 32 bytes>"`)
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

// JWTConfig is how portal JWTs are checked (the --jwt-* flags).
type JWTConfig struct {
	KeyFile          string
	Issuer           string // required
	Audience         string // required
	MaxLifetime      time.Duration
	TenantClaim      string // required claim naming the caller's tenant
	CrossTenantClaim string // optional boolean claim: the authority's own portal
}

type jwtAuth struct {
	key *reloading[jwtKey]
	cfg JWTConfig
}

func (a jwtAuth) authenticate(ctx context.Context) (Caller, error) {
	raw := bearer(ctx, false)
	if raw == "" {
		return Caller{}, credentialMissing()
	}
	k := a.key.get()
	opts := []jwt.ParserOption{jwt.WithValidMethods(k.methods), jwt.WithExpirationRequired(), jwt.WithIssuedAt(),
		jwt.WithLeeway(30 * time.Second), jwt.WithIssuer(a.cfg.Issuer), jwt.WithAudience(a.cfg.Audience)}
	claims := jwt.MapClaims{}
	tok, err := jwt.ParseWithClaims(raw, claims, func(*jwt.Token) (any, error) { return k.key, nil }, opts...)
	if err != nil || !tok.Valid {
		return Caller{}, credentialInvalid()
	}
	sub, _ := claims.GetSubject()
	exp, _ := claims.GetExpirationTime()
	iat, _ := claims.GetIssuedAt()
	if sub == "" || exp == nil || iat == nil || exp.Sub(iat.Time) > a.cfg.MaxLifetime {
		return Caller{}, credentialInvalid()
	}
	tenant, _ := claims[a.cfg.TenantClaim].(string)
	if strings.TrimSpace(tenant) == "" {
		return Caller{}, credentialInvalid()
	}
	c := Caller{ID: "jwt:" + sub, Tenant: tenant}
	if a.cfg.CrossTenantClaim != "" {
		switch v := claims[a.cfg.CrossTenantClaim].(type) {
		case nil:
		case bool:
			c.CrossTenant = v
		default: // a string "true" is a mistake of the issuer, not a grant
			return Caller{}, credentialInvalid()
		}
	}
	return c, nil
}

// ---- internal credential ----

// internalAuth requires what is configured of: a verified client certificate, a token of the callers
// file. Its caller carries the identity either names; with neither configured (development) there is
// no identity and the method ACL is not applied.
type internalAuth struct {
	requireCert bool
	callers     *reloading[[]internalCaller] // nil: no token
}

func (a internalAuth) authenticate(ctx context.Context) (Caller, error) {
	c := Caller{ID: "ip:" + peerIP(ctx)}
	if a.requireCert {
		id, ok := verifiedClient(ctx)
		if !ok {
			return Caller{}, errs.Unauthenticated(ReasonClientCertificateRequired, "internal RPCs need a verified client certificate")
		}
		if !validIdentity(id) {
			return Caller{}, errs.Unauthenticated(ReasonCredentialInvalid, "the client certificate names no valid identity "+
				"(a spiffe:// URI SAN or a CommonName of lower-case letters, digits, '-', '_' and '.')")
		}
		c.ID, c.Identity = "cert:"+id, id
	}
	if a.callers != nil {
		presented := bearer(ctx, false)
		if presented == "" {
			return Caller{}, credentialMissing()
		}
		sum := sha256.Sum256([]byte(presented))
		match := -1
		callers := a.callers.get()
		for i := range callers { // every entry is compared, in constant time each
			if subtle.ConstantTimeCompare(sum[:], callers[i].hash[:]) == 1 {
				match = i
			}
		}
		if match < 0 {
			return Caller{}, credentialInvalid()
		}
		id := callers[match].identity
		if a.requireCert && id != c.Identity {
			return Caller{}, errs.Unauthenticated(ReasonCredentialInvalid, "the client certificate and the token name different identities")
		}
		c.ID, c.Identity = "internal:"+id, id
	}
	c.Role = RoleOf(c.Identity)
	return c, nil
}

// verifiedClient returns the identity of the client certificate the TLS handshake verified.
func verifiedClient(ctx context.Context) (string, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return "", false
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return "", false
	}
	return certIdentity(info.State.VerifiedChains[0][0]), true
}

// tokenCreds send this service's own token on every peer call.
type tokenCreds struct {
	token *reloading[string]
}

func (t tokenCreds) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.token.get()}, nil
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

func newPortalAuth(log *zap.Logger, mode, apiKeysFile string, jc JWTConfig) (authenticator, error) {
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
		if jc.Issuer == "" || jc.Audience == "" || jc.TenantClaim == "" || jc.MaxLifetime <= 0 {
			return nil, errors.New("--portal-auth=jwt needs --jwt-issuer, --jwt-audience, --jwt-tenant-claim and a positive --jwt-max-lifetime")
		}
		key, err := newReloading(log, "jwt key", readFile(parseJWTKey, jc.KeyFile), jc.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("--jwt-key-file %s: %w", jc.KeyFile, err)
		}
		return jwtAuth{key: key, cfg: jc}, nil
	}
	return nil, fmt.Errorf("--portal-auth %q: use none, api-key or jwt", mode)
}
