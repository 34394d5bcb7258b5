package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	for _, name := range []string{"filing-token", "verification-token", "sms-dispatch-token", "deadline-token", "internal-callers", "api-keys"} {
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
