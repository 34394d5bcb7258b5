package deploy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/credentials"
)

// generated is what deploy/gen-secrets.sh made, keyed by the example file each replaces.
type generated struct {
	dir   string
	files map[string][]byte // example file content -> generated content
	envs  map[string]string // VAR=example value -> generated value
}

// generateSecrets runs deploy/gen-secrets.sh into dir and pairs each of its files with the example
// file of the manifests (deploy/k8s/base/secrets/<name>.example).
func generateSecrets(t *testing.T, dir string) generated {
	t.Helper()
	if out, err := exec.Command("sh", filepath.Join(repoRoot, "deploy/gen-secrets.sh"), dir).CombinedOutput(); err != nil {
		t.Fatalf("gen-secrets.sh: %v\n%s", err, out)
	}
	g := generated{dir: dir, files: map[string][]byte{}, envs: map[string]string{}}
	examples := filepath.Join(repoRoot, "deploy/k8s/base/secrets")
	read := func(path string) []byte {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	for _, name := range []string{"filing-token", "verification-token", "sms-dispatch-token", "deadline-token", "internal-callers", "api-keys",
		"filing-tls.crt", "filing-tls.key", "verification-tls.crt", "verification-tls.key", "sms-dispatch-tls.crt", "sms-dispatch-tls.key",
		"deadline-tls.crt", "deadline-tls.key", "ca.crt", "edge-api-key", "edge-page-secret"} {
		g.files[string(read(filepath.Join(examples, name+".example")))] = read(filepath.Join(dir, name))
	}
	for _, name := range []string{"hmac.env", "verification-seal.env", "sms-dispatch-seal.env", "sms-gateway.env"} {
		example, real := envFile(read(filepath.Join(examples, name+".example"))), envFile(read(filepath.Join(dir, name)))
		for k, v := range example {
			g.envs[k+"="+v] = real[k]
		}
	}
	return g
}

// clientTLS is what a client of the started services checks their certificates with: the CA
// gen-secrets.sh made.
func (g generated) clientTLS(t *testing.T) credentials.TransportCredentials {
	t.Helper()
	pool := x509.NewCertPool()
	data, err := os.ReadFile(filepath.Join(g.dir, "ca.crt"))
	if err != nil || !pool.AppendCertsFromPEM(data) {
		t.Fatalf("the generated CA: %v", err)
	}
	return credentials.NewTLS(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
}

// file is the generated content that replaces data, or data.
func (g generated) file(data []byte) []byte {
	if real, ok := g.files[string(data)]; ok {
		return real
	}
	return data
}

// env is the generated value of variable k that replaces v, or v.
func (g generated) env(k, v string) string {
	if real, ok := g.envs[k+"="+v]; ok {
		return real
	}
	return v
}

// checkServes: the certificate gen-secrets.sh made for svc chains to the generated CA and is valid for
// host (the name a caller dials), bare and with the example overlay's namespace.
func (g generated) checkServes(t *testing.T, svc, host, who string) {
	t.Helper()
	pool := x509.NewCertPool()
	ca, err := os.ReadFile(filepath.Join(g.dir, "ca.crt"))
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("the generated CA: %v", err)
	}
	pair, err := tls.LoadX509KeyPair(filepath.Join(g.dir, svc+"-tls.crt"), filepath.Join(g.dir, svc+"-tls.key"))
	if err != nil {
		t.Fatalf("%s's generated certificate: %v", svc, err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{host, host + ".icpverify.svc", host + ".icpverify.svc.cluster.local"} {
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("%s dials %s: %s's generated certificate is not valid for it: %v", who, name, svc, err)
		}
	}
}

// token is the token gen-secrets.sh made for identity.
func (g generated) token(identity string) string {
	data, err := os.ReadFile(filepath.Join(g.dir, identity+"-token"))
	if err != nil {
		panic(err)
	}
	return strings.TrimSpace(string(data))
}

func envFile(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			out[k] = v
		}
	}
	return out
}

// TestPageKeyIsCrossTenant: the edge's page key (generated and example) is an API key the services
// accept, marked cross-tenant: the page verifies for every portal's filings.
func TestPageKeyIsCrossTenant(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	if out, err := exec.Command("sh", filepath.Join(repoRoot, "deploy/gen-secrets.sh"), dir).CombinedOutput(); err != nil {
		t.Fatalf("gen-secrets.sh: %v\n%s", err, out)
	}
	for _, pair := range [][2]string{
		{filepath.Join(dir, "edge-api-key"), filepath.Join(dir, "api-keys")},
		{filepath.Join(repoRoot, "deploy/k8s/base/secrets/edge-api-key.example"), filepath.Join(repoRoot, "deploy/k8s/base/secrets/api-keys.example")},
		{filepath.Join(repoRoot, "deploy/secrets/edge-api-key.example"), filepath.Join(repoRoot, "deploy/secrets/api-keys.example")},
	} {
		key, err := os.ReadFile(pair[0])
		if err != nil {
			t.Fatal(err)
		}
		keys, err := os.ReadFile(pair[1])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(strings.TrimSpace(string(key))))
		want := "edge-portal:" + hex.EncodeToString(sum[:]) + ":cross-tenant"
		if !slices.Contains(strings.Split(string(keys), "\n"), want) {
			t.Errorf("%s has no line %q for the key of %s", pair[1], want, pair[0])
		}
	}
}
