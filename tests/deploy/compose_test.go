package deploy

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// composeFile is deploy/compose.yaml, decoded (YAML merge keys resolved).
func composeFile(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := yamlDocs(t, data)
	if len(docs) != 1 {
		t.Fatalf("compose.yaml: %d documents", len(docs))
	}
	return docs[0]
}

// composeLaunch is how compose starts svc: the image's ENTRYPOINT/ENV, env_file, environment, secrets.
func composeLaunch(t *testing.T, c map[string]any, svc string) launch {
	t.Helper()
	deployDir := filepath.Join(repoRoot, "deploy")
	img, _ := imageLaunch(t, svc)
	l := launch{source: "deploy/compose.yaml service " + svc, service: svc, args: img.args,
		env: map[string]string{}, envFrom: map[string]string{}, files: map[string][]byte{}}
	for k, v := range img.env {
		l.env[k], l.envFrom[k] = v, "Dockerfile ENV"
	}
	s := dig(c, "services", svc)
	for _, f := range list(dig(s, "env_file")) {
		for k, v := range readEnvFile(t, filepath.Join(deployDir, str(f))) {
			l.env[k], l.envFrom[k] = v, "env_file "+str(f)
		}
	}
	switch e := dig(s, "environment").(type) {
	case map[string]any:
		for k, v := range e {
			l.env[k], l.envFrom[k] = str(v), "environment"
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(str(kv), "=")
			l.env[k], l.envFrom[k] = v, "environment"
		}
	}
	for _, a := range list(dig(s, "command")) {
		l.args = append(l.args, str(a))
	}
	for _, name := range list(dig(s, "secrets")) {
		file := str(dig(c, "secrets", str(name), "file"))
		if file == "" {
			t.Errorf("%s: secret %v is not declared with a file", l.source, name)
			continue
		}
		if !strings.HasSuffix(file, ".example") {
			t.Errorf("%s: secret %v comes from %s: the repository holds only *.example secrets", l.source, name, file)
		}
		data, err := os.ReadFile(filepath.Join(deployDir, file))
		if err != nil {
			t.Errorf("%s: secret %v: %v", l.source, name, err)
		}
		l.files["/run/secrets/"+str(name)] = data
	}
	return l
}

func TestCompose(t *testing.T) {
	c := composeFile(t)
	deployDir := filepath.Join(repoRoot, "deploy")

	pg := dig(c, "services", "postgres")
	if img := str(dig(pg, "image")); img != "postgres:15" {
		t.Errorf("postgres image %q, want postgres:15", img)
	}
	if len(list(dig(pg, "volumes"))) == 0 || dig(pg, "healthcheck", "test") == nil {
		t.Error("postgres needs a volume and a healthcheck")
	}
	pgPassword, _ := os.ReadFile(filepath.Join(deployDir, str(dig(c, "secrets", "postgres_password", "file"))))

	launches := map[string]launch{}
	for _, svc := range services {
		launches[svc] = composeLaunch(t, c, svc)
	}
	for _, svc := range services {
		t.Run(svc, func(t *testing.T) {
			l := launches[svc]
			s := dig(c, "services", svc)
			if s == nil {
				t.Fatalf("compose.yaml has no service %s", svc)
			}
			if ctx := filepath.Join(deployDir, str(dig(s, "build", "context"))); filepath.Clean(ctx) != repoRoot {
				t.Errorf("%s: build context %s, want the repository root", l.source, ctx)
			}
			if df := filepath.Join(repoRoot, str(dig(s, "build", "dockerfile"))); df != dockerfilePath(svc) {
				t.Errorf("%s: dockerfile %s, want %s", l.source, df, dockerfilePath(svc))
			}
			if str(dig(s, "restart")) == "" {
				t.Errorf("%s: no restart policy", l.source)
			}
			// A service with a database waits for PostgreSQL; every service waits for the peers it
			// dials only when it has no database of its own to be ready with (the edge).
			if database[svc] {
				if cond := str(dig(s, "depends_on", "postgres", "condition")); cond != "service_healthy" {
					t.Errorf("%s: depends_on postgres condition %q, want service_healthy", l.source, cond)
				}
			} else {
				for flag, peer := range peerFlags {
					if _, ok := binaries[svc].flags[flag]; ok && str(dig(s, "depends_on", peer, "condition")) != "service_healthy" {
						t.Errorf("%s: calls %s (--%s) but does not depend on it being healthy", l.source, peer, flag)
					}
				}
				if dig(s, "depends_on", "postgres") != nil {
					t.Errorf("%s: depends on postgres, but has no database", l.source)
				}
			}
			checkAccepted(t, l)
			checkFileFlags(t, l)
			checkHMACKeys(t, l)
			checkSealKeys(t, l)
			checkProductionSettings(t, l)

			// Published: only the public listener (gRPC, or the edge's HTTP), and only for the services
			// with public services.
			var published []string
			for _, p := range list(dig(s, "ports")) {
				parts := strings.Split(str(p), ":")
				cport := portOf("x:" + parts[len(parts)-1])
				published = append(published, parts[len(parts)-1])
				if kind := l.listenerByPort(cport); kind != publicKind(svc) {
					t.Errorf("%s: publishes container port %d, which is %q, not the public %s listener", l.source, cport, kind, publicKind(svc))
				}
			}
			if (publicAPI[svc] || !grpcListeners[svc]) && len(published) != 1 {
				t.Errorf("%s: want the public listener published, got %v", l.source, published)
			}
			// The image's HEALTHCHECK still asks a listener of this configuration.
			if dig(s, "healthcheck") == nil {
				_, d := imageLaunch(t, svc)
				checkHealthcheck(t, d, l)
			}
			// Peers: the compose service name and the peer's internal listener (the edge: the public one).
			for flag, peer := range peerFlags {
				if _, ok := binaries[svc].flags[flag]; !ok {
					continue
				}
				want := net.JoinHostPort(peer, portString(peerTarget(svc, launches[peer])))
				if got := l.value(flag); got != want {
					t.Errorf("%s: --%s=%s, want %s (the listener of %s it must call)", l.source, flag, got, want, peer)
				}
			}
			if !database[svc] {
				if l.value("database-url") != "" {
					t.Errorf("%s: DATABASE_URL set, but %s has no database", l.source, svc)
				}
				return
			}
			// The database is the compose postgres, with its user, database and password.
			u, err := url.Parse(l.value("database-url"))
			if err != nil {
				t.Fatalf("%s: DATABASE_URL: %v", l.source, err)
			}
			pw, _ := u.User.Password()
			if u.Hostname() != "postgres" || u.User.Username() != str(dig(pg, "environment", "POSTGRES_USER")) ||
				strings.TrimPrefix(u.Path, "/") != str(dig(pg, "environment", "POSTGRES_DB")) || pw != strings.TrimSpace(string(pgPassword)) {
				t.Errorf("%s: DATABASE_URL does not match the postgres service (host, user, database, password secret)", l.source)
			}
		})
	}
}

// checkProductionSettings: what "configured as in production" means for every manifest.
func checkProductionSettings(t *testing.T, l launch) {
	t.Helper()
	if !grpcListeners[l.service] {
		checkEdgeSettings(t, l)
		return
	}
	if l.value("store") != "postgres" {
		t.Errorf("%s: --store=%s, want postgres", l.source, l.value("store"))
	}
	if l.value("internal-token-file") == "" && l.value("tls-client-ca-file") == "" {
		t.Errorf("%s: internal RPCs need a credential (--internal-token-file or --tls-client-ca-file)", l.source)
	}
	if publicAPI[l.service] {
		if l.value("internal-grpc-addr") == "" {
			t.Errorf("%s: the public and internal listeners must be split (--internal-grpc-addr)", l.source)
		}
		if a := l.value("portal-auth"); a != "api-key" && a != "jwt" {
			t.Errorf("%s: --portal-auth=%s: portal callers must authenticate", l.source, a)
		}
	}
	// TLS in production: every gRPC listener has a certificate, and a service that calls peers checks
	// theirs (a peer dialled in plaintext would fail against a TLS listener, or trust anyone).
	if l.value("tls-cert-file") == "" || l.value("tls-key-file") == "" {
		t.Errorf("%s: the gRPC listeners must speak TLS (--tls-cert-file, --tls-key-file)", l.source)
	}
	for flag := range peerFlags {
		if l.value(flag) != "" && l.value("peer-tls-ca-file") == "" {
			t.Errorf("%s: calls a peer (--%s) without checking its certificate (--peer-tls-ca-file)", l.source, flag)
		}
	}
	if l.service == "sms-dispatch" && l.value("sms-provider") != "webhook" {
		t.Errorf("%s: --sms-provider=%s: the console provider is for development only", l.source, l.value("sms-provider"))
	}
}

// checkEdgeSettings: the edge in production checks the public listeners' certificates (they speak TLS)
// and serves the page with a credential, never without one.
func checkEdgeSettings(t *testing.T, l launch) {
	t.Helper()
	if l.value("peer-tls-ca-file") == "" {
		t.Errorf("%s: the edge dials TLS listeners: --peer-tls-ca-file is required", l.source)
	}
	if l.value("page-api-key-file") == "" {
		t.Errorf("%s: no --page-api-key-file: the 短信核验 page would be off", l.source)
	}
	if l.value("page-secret-file") == "" {
		t.Errorf("%s: no --page-secret-file: forms and captchas drawn on one edge replica would fail on another", l.source)
	}
	if v := l.value("page-no-credential"); v != "" && v != "false" {
		t.Errorf("%s: --page-no-credential is for development only", l.source)
	}
}

func portString(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}
