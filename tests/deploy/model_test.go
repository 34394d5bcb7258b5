// Package deploy checks deploy/ (Dockerfiles, compose.yaml, the kustomize base and overlay) against the
// five binaries: every flag, environment variable, port and probe they use must be one the binary really
// accepts, and the binaries started exactly as the Kubernetes Deployments start them must become healthy.
// No container engine is needed: the binaries are built here the way the Dockerfiles build them.
package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

var services = []string{"filing", "verification", "sms-dispatch", "deadline", "edge"}

// database: the services with a PostgreSQL schema of their own (--store=postgres, DATABASE_URL). The
// edge has none.
var database = map[string]bool{"filing": true, "verification": true, "sms-dispatch": true, "deadline": true}

// grpcListeners: the services that serve gRPC (--grpc-addr, TLS, internal credentials). The edge serves
// HTTP only (--http-addr) and is a client of the public gRPC listeners.
var grpcListeners = map[string]bool{"filing": true, "verification": true, "sms-dispatch": true, "deadline": true}

// publicAPI: the services with public (portal) services; the others serve internal services only.
var publicAPI = map[string]bool{"filing": true, "verification": true}

// peerFlags maps a peer-address flag to the service it names.
var peerFlags = map[string]string{
	"filing-addr": "filing", "verification-addr": "verification",
	"sms-dispatch-addr": "sms-dispatch", "deadline-addr": "deadline",
}

var (
	repoRoot string
	binDir   string
	probeBin string
	binaries = map[string]*binary{}
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs("../..")
	if err != nil {
		panic(err)
	}
	repoRoot = root
	dir, err := os.MkdirTemp("", "icpverify-deploy-bin")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	binDir = dir
	// As the Dockerfiles build them: static, outside the workspace, from each module's folder.
	for _, s := range services {
		if err := goBuild(filepath.Join(root, "services", s), filepath.Join(dir, s), "./cmd/"+s); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		b, err := loadBinary(s, filepath.Join(dir, s))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binaries[s] = b
	}
	probeBin = filepath.Join(dir, "healthprobe")
	if err := goBuild(filepath.Join(root, "deploy", "healthprobe"), probeBin, "."); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func goBuild(dir, out, pkg string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, pkg)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("CGO_ENABLED=0 GOWORK=off go build %s (in %s): %v\n%s", pkg, dir, err, b)
	}
	return nil
}

// binary is one service binary and the flags its -h lists.
type binary struct {
	name      string
	path      string
	flags     map[string]flagInfo
	envToFlag map[string]string
}

type flagInfo struct {
	def  string
	bool bool
}

var (
	helpFlagRE = regexp.MustCompile(`^  -([a-z0-9][a-z0-9-]*)(?:\s+(\S+))?$`)
	helpEnvRE  = regexp.MustCompile(`\(env ([A-Z0-9_]+)\)`)
	helpDefRE  = regexp.MustCompile(`\(default (.*)\)$`)
)

// loadBinary reads the flags, their environment variables and defaults from the binary's -h output.
func loadBinary(name, path string) (*binary, error) {
	out, _ := exec.Command(path, "-h").CombinedOutput() // -h prints the usage and exits 0
	b := &binary{name: name, path: path, flags: map[string]flagInfo{}, envToFlag: map[string]string{}}
	var cur string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := helpFlagRE.FindStringSubmatch(line); m != nil {
			cur = m[1]
			b.flags[cur] = flagInfo{bool: m[2] == ""}
			b.envToFlag[envName(cur)] = cur
			continue
		}
		if cur == "" {
			continue
		}
		if m := helpEnvRE.FindStringSubmatch(line); m != nil {
			b.envToFlag[m[1]] = cur
		}
		if m := helpDefRE.FindStringSubmatch(line); m != nil {
			fi := b.flags[cur]
			fi.def = m[1]
			if u, err := strconv.Unquote(m[1]); err == nil {
				fi.def = u
			}
			b.flags[cur] = fi
		}
	}
	if len(b.flags) < 5 {
		return nil, fmt.Errorf("%s -h listed %d flags:\n%s", name, len(b.flags), out)
	}
	return b, nil
}

// envName is pkg/config's EnvName: grpc-addr -> GRPC_ADDR.
func envName(flag string) string { return strings.ToUpper(strings.ReplaceAll(flag, "-", "_")) }

// launch is how one manifest starts one binary.
type launch struct {
	source  string // where it comes from, for messages
	service string
	args    []string
	env     map[string]string // everything the process sees, the image's ENV included
	files   map[string][]byte // files mounted into the container, by path
	envFrom map[string]string // variable -> where it came from, for messages
}

// flagArgs parses args into flag -> value (the last one wins, as with package flag). Unknown flags are
// reported by checkAccepted; here a flag without "=" takes the next argument unless it is a bool flag.
func (l launch) flagArgs() map[string]string {
	b := binaries[l.service]
	out := map[string]string{}
	for i := 0; i < len(l.args); i++ {
		a := l.args[i]
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, val, ok := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !ok {
			if fi, known := b.flags[name]; known && fi.bool {
				val = "true"
			} else if i+1 < len(l.args) {
				val = l.args[i+1]
				i++
			}
		}
		out[name] = val
	}
	return out
}

// value is what the binary ends up with for a flag: the command line, else the environment, else the default.
func (l launch) value(flag string) string {
	if v, ok := l.flagArgs()[flag]; ok {
		return v
	}
	if v, ok := l.env[envName(flag)]; ok {
		return v
	}
	return binaries[l.service].flags[flag].def
}

// The listener kinds.
const (
	lisGRPC     = "grpc"          // --grpc-addr
	lisInternal = "grpc-internal" // --internal-grpc-addr, or --grpc-addr of a service without public services
	lisAdmin    = "admin"         // --admin-addr (HTTP: /healthz, /readyz, /metrics)
	lisHTTP     = "http"          // --http-addr of the edge (public HTTP: REST, /openapi.json, the page)
)

// listeners returns the addresses the binary listens on, by kind. For sms-dispatch and deadline the one
// gRPC listener is their internal one; the edge has its public HTTP listener instead.
func (l launch) listeners() map[string]string {
	out := map[string]string{}
	if !grpcListeners[l.service] {
		out[lisHTTP] = l.value("http-addr")
	} else if publicAPI[l.service] {
		out[lisGRPC] = l.value("grpc-addr")
		if v := l.value("internal-grpc-addr"); v != "" {
			out[lisInternal] = v
		}
	} else {
		out[lisInternal] = l.value("grpc-addr")
	}
	if v := l.value("admin-addr"); v != "" {
		out[lisAdmin] = v
	}
	return out
}

// internalAddr is where peers must call this service.
func (l launch) internalAddr() string {
	ls := l.listeners()
	if a, ok := ls[lisInternal]; ok {
		return a
	}
	return ls[lisGRPC]
}

// publicKind is the listener kind svc publishes: the public gRPC one, or the edge's HTTP one.
func publicKind(svc string) string {
	if grpcListeners[svc] {
		return lisGRPC
	}
	return lisHTTP
}

// peerTarget is the listener of peer that caller must dial: a service calls a peer's internal listener;
// the edge, a portal-side client, calls the public one.
func peerTarget(caller string, peer launch) string {
	if grpcListeners[caller] {
		return peer.internalAddr()
	}
	return peer.listeners()[lisGRPC]
}

// listenerByPort returns the listener kind on port, or "".
func (l launch) listenerByPort(port int) string {
	for kind, addr := range l.listeners() {
		if portOf(addr) == port {
			return kind
		}
	}
	return ""
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return -1
	}
	return n
}

// checkAccepted: every flag on the command line and every environment variable is one of the binary's.
func checkAccepted(t *testing.T, l launch) {
	t.Helper()
	b := binaries[l.service]
	for _, a := range l.args {
		if !strings.HasPrefix(a, "-") {
			continue
		}
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if _, ok := b.flags[name]; !ok {
			t.Errorf("%s: %s does not accept the flag --%s (not in its -h)", l.source, l.service, name)
		}
	}
	for _, k := range sortedKeys(l.env) {
		if _, ok := b.envToFlag[k]; !ok {
			t.Errorf("%s: environment variable %s (%s) is not a flag of %s", l.source, k, l.envFrom[k], l.service)
		}
	}
}

// checkFileFlags: every *-file flag names a file the manifest mounts.
func checkFileFlags(t *testing.T, l launch) {
	t.Helper()
	for name := range binaries[l.service].flags {
		if !strings.HasSuffix(name, "-file") {
			continue
		}
		if v := l.value(name); v != "" {
			if _, ok := l.files[v]; !ok {
				t.Errorf("%s: --%s=%s is not a file the manifest mounts (mounted: %v)", l.source, name, v, sortedKeys(l.files))
			}
		}
	}
}

// checkHMACKeys: verification's keys parse as the service parses them (kid:hex, at least 32 bytes).
func checkHMACKeys(t *testing.T, l launch) {
	t.Helper()
	if l.service != "verification" {
		return
	}
	spec := l.value("hmac-keys")
	if spec == "" {
		t.Errorf("%s: verification needs HMAC_KEYS with --store=postgres", l.source)
	}
	for _, kv := range strings.Split(spec, ",") {
		kid, hexKey, ok := strings.Cut(kv, ":")
		if !ok || kid == "" || len(hexKey) < 64 || strings.Trim(hexKey, "0123456789abcdefABCDEF") != "" {
			t.Errorf("%s: HMAC_KEYS entry %q is not kid:hexkey of at least 32 bytes", l.source, kv)
		}
	}
}

// sealing: the services that keep codes sealed at rest (--seal-keys, required on PostgreSQL).
var sealing = map[string]bool{"verification": true, "sms-dispatch": true}

// checkSealKeys: verification's and sms-dispatch's seal keys parse as pkg/seal parses them (kid:hex,
// exactly 32 bytes each).
func checkSealKeys(t *testing.T, l launch) {
	t.Helper()
	if !sealing[l.service] {
		return
	}
	spec := l.value("seal-keys")
	if spec == "" {
		t.Errorf("%s: %s needs SEAL_KEYS with --store=postgres", l.source, l.service)
	}
	for _, kv := range strings.Split(spec, ",") {
		kid, hexKey, ok := strings.Cut(kv, ":")
		if !ok || kid == "" || len(hexKey) != 64 || strings.Trim(hexKey, "0123456789abcdefABCDEF") != "" {
			t.Errorf("%s: SEAL_KEYS entry %q is not kid:hexkey of exactly 32 bytes", l.source, kv)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// --- Dockerfiles ---

type instruction struct {
	cmd  string // upper case
	args string
}

// dockerfile is a parsed Dockerfile: the instructions of its final stage and all of them.
type dockerfile struct {
	path   string
	all    []instruction
	stages [][]instruction
}

func readDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := dockerfile{path: path}
	var cont strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cont.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cont.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cont.WriteString(trimmed)
		full := strings.TrimSpace(cont.String())
		cont.Reset()
		if full == "" {
			continue
		}
		cmd, rest, _ := strings.Cut(full, " ")
		in := instruction{cmd: strings.ToUpper(cmd), args: strings.TrimSpace(rest)}
		d.all = append(d.all, in)
		if in.cmd == "FROM" {
			d.stages = append(d.stages, nil)
		}
		if len(d.stages) > 0 {
			d.stages[len(d.stages)-1] = append(d.stages[len(d.stages)-1], in)
		}
	}
	return d
}

func (d dockerfile) final() []instruction { return d.stages[len(d.stages)-1] }

// get returns the args of the final stage's instructions named cmd.
func (d dockerfile) get(cmd string) []string {
	var out []string
	for _, in := range d.final() {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// execForm parses a JSON exec form ["a", "b"].
func execForm(s string) ([]string, error) {
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil {
		return nil, fmt.Errorf("not an exec form %q: %v", s, err)
	}
	return out, nil
}

// env returns the final stage's ENV (KEY=VALUE pairs, unquoted values).
func (d dockerfile) env() map[string]string {
	out := map[string]string{}
	for _, e := range d.get("ENV") {
		for _, kv := range strings.Fields(e) {
			if k, v, ok := strings.Cut(kv, "="); ok {
				out[k] = strings.Trim(v, `"`)
			}
		}
	}
	return out
}

// --- YAML ---

// yamlDocs decodes every document of a multi-document YAML stream.
func yamlDocs(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []map[string]any
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err != nil {
			if err.Error() == "EOF" {
				return out
			}
			t.Fatalf("YAML: %v", err)
		}
		if doc != nil {
			out = append(out, doc)
		}
	}
}

// dig walks maps by keys; nil when a step is missing.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func str(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func toInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case string:
		i, err := strconv.Atoi(n)
		if err != nil {
			return -1
		}
		return i
	}
	return -1
}

// readEnvFile reads KEY=VALUE lines (compose env_file, kustomize envs), skipping blanks and comments.
func readEnvFile(t *testing.T, path string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("%s: not KEY=VALUE: %q", path, line)
			continue
		}
		out[k] = v
	}
	return out
}
