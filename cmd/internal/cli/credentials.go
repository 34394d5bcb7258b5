package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// publicServices are the services a portal calls with its API key; every other method is internal
// and takes the operator's (or reviewer's) token.
var publicServices = []string{"/icp.filing.v1.FilingService/", "/icp.verification.v1.VerificationService/"}

// credentialFiles are the global flags that say who icpctl speaks as and how it checks the servers.
type credentialFiles struct {
	apiKeyFile, tokenFile, tlsCAFile string
}

// secret reads the first non-blank line of a credential file. Its content never reaches an error.
func secret(flagName, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("%s: %v", flagName, err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if s := strings.TrimSpace(line); s != "" {
			return s, nil
		}
	}
	return "", usagef("%s: %s holds no credential", flagName, path)
}

// dialOptions are the options of every connection: TLS checked against --tls-ca-file (plaintext
// without it, for the development suite), the API key on public calls and the token on internal ones.
func (c credentialFiles) dialOptions() ([]grpc.DialOption, error) {
	key, err := secret("--api-key-file", c.apiKeyFile)
	if err != nil {
		return nil, err
	}
	token, err := secret("--token-file", c.tokenFile)
	if err != nil {
		return nil, err
	}
	transport := insecure.NewCredentials()
	if c.tlsCAFile != "" {
		pem, err := os.ReadFile(c.tlsCAFile)
		if err != nil {
			return nil, usagef("--tls-ca-file: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usagef("--tls-ca-file: %s holds no PEM certificate", c.tlsCAFile)
		}
		transport = credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
	}
	withCredential := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		public := false
		for _, p := range publicServices {
			public = public || strings.HasPrefix(method, p)
		}
		switch {
		case public && key != "":
			ctx = metadata.AppendToOutgoingContext(ctx, "x-api-key", key)
		case !public && token != "":
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	return []grpc.DialOption{grpc.WithTransportCredentials(transport), grpc.WithUnaryInterceptor(withCredential)}, nil
}

// dial connects to addr with the credentials of the global flags (read once per invocation).
func (a *app) dial(addr string) (*grpc.ClientConn, error) {
	if a.dialOpts == nil {
		opts, err := a.g.creds.dialOptions()
		if err != nil {
			return nil, err
		}
		a.dialOpts = opts
	}
	c, err := grpc.NewClient(addr, a.dialOpts...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return c, nil
}
