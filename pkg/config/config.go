// Package config declares the flags every binary shares. Each flag can also be set from the
// environment: --grpc-addr reads GRPC_ADDR, --database-url reads DATABASE_URL, and so on; a flag
// given on the command line wins over the environment, which wins over the default.
package config

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Default listen addresses of the four services (also the default peer addresses) and the edge's
// HTTP address.
const (
	DefaultEdgeHTTPAddr     = "127.0.0.1:8080"
	DefaultFilingAddr       = "127.0.0.1:50051"
	DefaultVerificationAddr = "127.0.0.1:50052"
	DefaultSMSDispatchAddr  = "127.0.0.1:50053"
	DefaultDeadlineAddr     = "127.0.0.1:50054"
)

// EnvName is the environment variable that backs a flag: grpc-addr -> GRPC_ADDR.
func EnvName(flagName string) string {
	return strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Flags is a flag set whose flags fall back to environment variables.
type Flags struct {
	*flag.FlagSet
	// EnvNames overrides the environment variable of some flags (flag name -> variable), for
	// flags whose derived name would be too generic, such as a CLI's --output.
	EnvNames map[string]string
	envErrs  []error
}

func (f *Flags) envName(flagName string) string {
	if e, ok := f.EnvNames[flagName]; ok {
		return e
	}
	return EnvName(flagName)
}

// NewFlags returns an empty flag set for the named binary.
func NewFlags(name string) *Flags {
	return &Flags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError)}
}

// String declares a string flag.
func (f *Flags) String(name, def, usage string) *string {
	if v, ok := os.LookupEnv(f.envName(name)); ok {
		def = v
	}
	return f.FlagSet.String(name, def, fmt.Sprintf("%s (env %s)", usage, f.envName(name)))
}

// Duration declares a duration flag.
func (f *Flags) Duration(name string, def time.Duration, usage string) *time.Duration {
	if v, ok := os.LookupEnv(f.envName(name)); ok {
		d, err := time.ParseDuration(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s: %w", f.envName(name), err))
		}
		def = d
	}
	return f.FlagSet.Duration(name, def, fmt.Sprintf("%s (env %s)", usage, f.envName(name)))
}

// Int declares an int flag.
func (f *Flags) Int(name string, def int, usage string) *int {
	if v, ok := os.LookupEnv(f.envName(name)); ok {
		n, err := strconv.Atoi(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s: %w", f.envName(name), err))
		}
		def = n
	}
	return f.FlagSet.Int(name, def, fmt.Sprintf("%s (env %s)", usage, f.envName(name)))
}

// Bool declares a bool flag.
func (f *Flags) Bool(name string, def bool, usage string) *bool {
	if v, ok := os.LookupEnv(f.envName(name)); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s: %w", f.envName(name), err))
		}
		def = b
	}
	return f.FlagSet.Bool(name, def, fmt.Sprintf("%s (env %s)", usage, f.envName(name)))
}

// Parse parses the command line after the environment was read. For -h or --help it prints the
// usage and returns flag.ErrHelp, which Main treats as a clean exit.
func (f *Flags) Parse(args []string) error {
	if err := errors.Join(f.envErrs...); err != nil {
		return err
	}
	return f.FlagSet.Parse(args)
}

// Main is the main function of the binaries: it calls run with the command-line arguments and a
// context that SIGINT and SIGTERM cancel, then exits. It exits 0 when run returns nil or
// flag.ErrHelp (-h or --help: Parse printed the usage); otherwise it prints "name: error" to stderr
// and exits 1.
func Main(name string, run func(ctx context.Context, args []string) error) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:])
	stop()
	os.Exit(exitCode(os.Stderr, name, err))
}

// exitCode is Main's exit status for run's error, which it reports on w.
func exitCode(w io.Writer, name string, err error) int {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return 0
	}
	fmt.Fprintf(w, "%s: %v\n", name, err)
	return 1
}

// Common holds the flags every service takes.
type Common struct {
	Store           *string
	GRPCAddr        *string
	DatabaseURL     *string
	DatabaseSchema  *string
	LogLevel        *string
	ShutdownTimeout *time.Duration
	// Observability (see pkg/observe); every one defaults to off.
	AdminAddr        *string
	OTLPEndpoint     *string
	TraceSampleRatio *float64
	// InsecureDev lets a service on PostgreSQL start with open defaults (see OpenDefault).
	InsecureDev *bool
	// IdempotencyRetention is how long the answers to request ids are kept (services that keep them).
	IdempotencyRetention *time.Duration
}

// RegisterCommon declares the shared flags with a service's defaults.
func RegisterCommon(f *Flags, defaultAddr, defaultSchema string) Common {
	return Common{
		Store:           f.String("store", StorePostgres, "storage engine: postgres, or memory (the one-process development server: nothing survives a restart)"),
		GRPCAddr:        f.String("grpc-addr", defaultAddr, "address the gRPC server listens on"),
		DatabaseURL:     f.String("database-url", "", "PostgreSQL URL, e.g. postgres://user@host:5432/db?sslmode=disable (required)"),
		DatabaseSchema:  f.String("database-schema", defaultSchema, "PostgreSQL schema this service owns; created and migrated at start"),
		LogLevel:        f.String("log-level", "info", "log level: debug, info, warn, error"),
		ShutdownTimeout: f.Duration("shutdown-timeout", 15*time.Second, "on SIGTERM, how long in-flight RPCs may finish before a hard stop"),
		AdminAddr: f.String("admin-addr", "", "address of the admin HTTP listener serving /healthz, /readyz and /metrics "+
			"(Prometheus), e.g. 0.0.0.0:9090; empty: none"),
		OTLPEndpoint: f.String("otlp-endpoint", "", "OpenTelemetry collector (OTLP/gRPC) that traces are exported to: host:port "+
			"(plaintext) or https://host:port; empty: tracing off"),
		TraceSampleRatio: f.Float64("trace-sample-ratio", 1, "with --otlp-endpoint: the share of new traces recorded, 0 to 1 "+
			"(a sampled caller's trace is always continued)"),
		IdempotencyRetention: f.Duration("idempotency-retention", 7*24*time.Hour, "how long the stored answer to a request_id "+
			"is kept (a retry later than that is a new request); older ones are purged in the background every hour"),
		InsecureDev: f.Bool("insecure-dev", false, "development only: start on PostgreSQL even with open defaults (no portal auth, "+
			"the console SMS provider, no internal credential, a placeholder secret), logging each; the memory store always allows them"),
	}
}

// The storage engines.
const (
	StorePostgres = "postgres"
	StoreMemory   = "memory"
)

// Memory tells whether the service runs on the in-memory engine.
func (c Common) Memory() bool { return *c.Store == StoreMemory }

// Check reports missing or contradictory shared flags.
func (c Common) Check() error {
	switch *c.Store {
	case StorePostgres:
		if *c.DatabaseURL == "" {
			return errors.New("--database-url (or DATABASE_URL) is required with --store=postgres")
		}
	case StoreMemory:
	default:
		return fmt.Errorf("--store %q: use postgres or memory", *c.Store)
	}
	if *c.GRPCAddr == "" {
		return errors.New("--grpc-addr (or GRPC_ADDR) is required")
	}
	if c.TraceSampleRatio != nil && (*c.TraceSampleRatio < 0 || *c.TraceSampleRatio > 1) {
		return fmt.Errorf("--trace-sample-ratio %v: must be between 0 and 1", *c.TraceSampleRatio)
	}
	return nil
}

// Float64 declares a float64 flag.
func (f *Flags) Float64(name string, def float64, usage string) *float64 {
	if v, ok := os.LookupEnv(f.envName(name)); ok {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			f.envErrs = append(f.envErrs, fmt.Errorf("env %s: %w", f.envName(name), err))
		}
		def = n
	}
	return f.FlagSet.Float64(name, def, fmt.Sprintf("%s (env %s)", usage, f.envName(name)))
}

// SecurityParts says which security flags a service takes besides those every service takes.
type SecurityParts int

// The optional parts of the security flags.
const (
	// PublicAPI: the service serves public (portal) services, so it takes the portal-auth flags.
	PublicAPI SecurityParts = 1 << iota
	// Peers: the service calls other services, so it takes the peer TLS flags.
	Peers
)

// The portal authentication modes (--portal-auth).
const (
	PortalAuthNone   = "none"
	PortalAuthAPIKey = "api-key"
	PortalAuthJWT    = "jwt"
)

// Security holds the flags of the security edge: listeners, TLS, the internal credential, portal
// authentication. Pointers of parts a service did not register are nil (see Get).
type Security struct {
	InternalGRPCAddr    *string
	TLSCertFile         *string
	TLSKeyFile          *string
	TLSClientCAFile     *string
	InternalTokenFile   *string
	InternalCallersFile *string

	PeerTLSCAFile   *string
	PeerTLSCertFile *string
	PeerTLSKeyFile  *string

	PortalAuth  *string
	APIKeysFile *string
	JWTKeyFile  *string
	JWTIssuer   *string
	JWTAudience *string
	// JWTMaxLifetime bounds exp - iat; JWTTenantClaim names the tenant claim, JWTCrossTenantClaim the
	// boolean claim of the authority's own portal.
	JWTMaxLifetime      *time.Duration
	JWTTenantClaim      *string
	JWTCrossTenantClaim *string
}

// Get returns *p, or "" when p is nil (a flag the service does not take).
func Get(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// RegisterSecurity declares the security flags; every one defaults to today's development behaviour:
// one plaintext listener, no credentials.
func RegisterSecurity(f *Flags, parts SecurityParts) Security {
	s := Security{
		InternalGRPCAddr: f.String("internal-grpc-addr", "", "address of a separate listener for the internal services "+
			"(empty: they are served on --grpc-addr with the public ones)"),
		TLSCertFile: f.String("tls-cert-file", "", "PEM server certificate (chain) for the gRPC listeners; with --tls-key-file enables TLS, "+
			"re-read when the file changes"),
		TLSKeyFile: f.String("tls-key-file", "", "PEM private key of --tls-cert-file"),
		TLSClientCAFile: f.String("tls-client-ca-file", "", "PEM CA bundle: internal RPCs then require a client certificate it verifies "+
			"(mutual TLS; the internal listener refuses connections without one)"),
		InternalTokenFile: f.String("internal-token-file", "", "file with this service's own token (first non-blank line, at least 32 "+
			"characters, no placeholder), sent as 'authorization: Bearer <token>' on its calls to peers. Re-read when the file changes"),
		InternalCallersFile: f.String("internal-callers-file", "", `lines "identity:sha256-hex-of-token": internal RPCs require a `+
			"bearer token of one of them, and the identity's role (the identity, or its part before the first '-') must be "+
			"among the method's callers. Re-read when the file changes"),
	}
	if parts&Peers != 0 {
		p := RegisterPeerTLS(f)
		s.PeerTLSCAFile, s.PeerTLSCertFile, s.PeerTLSKeyFile = p.PeerTLSCAFile, p.PeerTLSCertFile, p.PeerTLSKeyFile
	}
	if parts&PublicAPI != 0 {
		s.PortalAuth = f.String("portal-auth", PortalAuthNone, "how portal callers of the public services authenticate: "+
			"none (development), api-key or jwt")
		s.APIKeysFile = f.String("api-keys-file", "", `with --portal-auth=api-key: lines "key_id:sha256-hex-of-key[:cross-tenant]" `+
			"(the key id is the tenant; cross-tenant: the authority's own portal, sees every tenant); re-read when the file changes")
		s.JWTKeyFile = f.String("jwt-key-file", "", `with --portal-auth=jwt: a PEM RSA/EC/Ed25519 public key or certificate, or `+
			`"hs256:<secret of at least 32 bytes>"`)
		s.JWTIssuer = f.String("jwt-issuer", "", "with --portal-auth=jwt: the required iss claim (required)")
		s.JWTAudience = f.String("jwt-audience", "", "with --portal-auth=jwt: the required aud claim (required)")
		s.JWTMaxLifetime = f.Duration("jwt-max-lifetime", time.Hour, "with --portal-auth=jwt: the longest exp - iat accepted "+
			"(both claims are required)")
		s.JWTTenantClaim = f.String("jwt-tenant-claim", "tenant", "with --portal-auth=jwt: the claim naming the caller's tenant; "+
			"a token without it is refused")
		s.JWTCrossTenantClaim = f.String("jwt-cross-tenant-claim", "cross_tenant", "with --portal-auth=jwt: the boolean claim "+
			"that makes the caller cross-tenant (the authority's own portal)")
	}
	return s
}

// RegisterPeerTLS declares only the peer TLS flags, for a binary that calls the services without
// serving gRPC itself (the edge); the other pointers of the Security it returns are nil.
func RegisterPeerTLS(f *Flags) Security {
	return Security{
		PeerTLSCAFile: f.String("peer-tls-ca-file", "", "PEM CA bundle that verifies the peers' server certificates; "+
			"setting any --peer-tls-* flag makes peer calls use TLS"),
		PeerTLSCertFile: f.String("peer-tls-cert-file", "", "PEM client certificate presented to peers (mutual TLS)"),
		PeerTLSKeyFile:  f.String("peer-tls-key-file", "", "PEM private key of --peer-tls-cert-file"),
	}
}

// Check reports missing or contradictory security flags.
func (s Security) Check() error {
	var problems []error
	if (Get(s.TLSCertFile) == "") != (Get(s.TLSKeyFile) == "") {
		problems = append(problems, errors.New("--tls-cert-file and --tls-key-file go together"))
	}
	if Get(s.TLSClientCAFile) != "" && Get(s.TLSCertFile) == "" {
		problems = append(problems, errors.New("--tls-client-ca-file needs --tls-cert-file and --tls-key-file (mutual TLS is TLS)"))
	}
	if (Get(s.PeerTLSCertFile) == "") != (Get(s.PeerTLSKeyFile) == "") {
		problems = append(problems, errors.New("--peer-tls-cert-file and --peer-tls-key-file go together"))
	}
	switch Get(s.PortalAuth) {
	case "", PortalAuthNone:
	case PortalAuthAPIKey:
		if Get(s.APIKeysFile) == "" {
			problems = append(problems, errors.New("--portal-auth=api-key needs --api-keys-file"))
		}
	case PortalAuthJWT:
		if Get(s.JWTKeyFile) == "" {
			problems = append(problems, errors.New("--portal-auth=jwt needs --jwt-key-file"))
		}
		if Get(s.JWTIssuer) == "" || Get(s.JWTAudience) == "" {
			problems = append(problems, errors.New("--portal-auth=jwt needs --jwt-issuer and --jwt-audience, so a token minted for another service is refused"))
		}
		if Get(s.JWTTenantClaim) == "" {
			problems = append(problems, errors.New("--portal-auth=jwt needs --jwt-tenant-claim"))
		}
		if s.JWTMaxLifetime != nil && *s.JWTMaxLifetime <= 0 {
			problems = append(problems, errors.New("--jwt-max-lifetime must be positive"))
		}
	default:
		problems = append(problems, fmt.Errorf("--portal-auth %q: use none, api-key or jwt", Get(s.PortalAuth)))
	}
	return errors.Join(problems...)
}

// PortalAuthEnabled tells whether public callers must authenticate.
func (s Security) PortalAuthEnabled() bool {
	m := Get(s.PortalAuth)
	return m != "" && m != PortalAuthNone
}

// InternalCredential tells whether internal RPCs require a credential (client certificate or a token
// of the callers file).
func (s Security) InternalCredential() bool {
	return Get(s.TLSClientCAFile) != "" || Get(s.InternalCallersFile) != ""
}

// OpenDefaults lists the open defaults of the security flags: portal auth off (services with a public
// API) and no internal credential. Services add their own (console provider, placeholder keys).
func (s Security) OpenDefaults() []OpenDefault {
	var open []OpenDefault
	if s.PortalAuth != nil && !s.PortalAuthEnabled() {
		open = append(open, OpenDefault{Flag: "--portal-auth=api-key or jwt", What: "portal callers need no credential"})
	}
	if !s.InternalCredential() {
		open = append(open, OpenDefault{Flag: "--internal-callers-file or --tls-client-ca-file",
			What: "internal RPCs need no credential, so any caller may approve or return filings"})
	}
	return open
}

// PeerTLS tells whether peer calls use TLS.
func (s Security) PeerTLS() bool {
	return Get(s.PeerTLSCAFile) != "" || Get(s.PeerTLSCertFile) != "" || Get(s.PeerTLSKeyFile) != ""
}
