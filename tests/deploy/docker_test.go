package deploy

import (
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func dockerfilePath(svc string) string {
	return filepath.Join(repoRoot, "deploy", "docker", svc+".Dockerfile")
}

// imageLaunch is how the image alone starts the binary: ENTRYPOINT, CMD and ENV.
func imageLaunch(t *testing.T, svc string) (launch, dockerfile) {
	t.Helper()
	d := readDockerfile(t, dockerfilePath(svc))
	l := launch{source: "deploy/docker/" + svc + ".Dockerfile", service: svc, env: d.env(), envFrom: map[string]string{}}
	for k := range l.env {
		l.envFrom[k] = "Dockerfile ENV"
	}
	for _, ep := range d.get("ENTRYPOINT") {
		argv, err := execForm(ep)
		if err != nil || len(argv) == 0 {
			t.Fatalf("%s: ENTRYPOINT: %v", l.source, err)
		}
		l.args = append(l.args, argv[1:]...)
	}
	for _, c := range d.get("CMD") {
		argv, err := execForm(c)
		if err != nil {
			t.Fatalf("%s: CMD: %v", l.source, err)
		}
		l.args = append(l.args, argv...)
	}
	return l, d
}

func TestDockerfiles(t *testing.T) {
	for _, svc := range services {
		t.Run(svc, func(t *testing.T) {
			l, d := imageLaunch(t, svc)
			src := l.source
			if len(d.stages) < 2 {
				t.Fatalf("%s: want a multi-stage build, got %d stage(s)", src, len(d.stages))
			}
			// Build stage: golang:1.26, static, outside the workspace, trimmed, this service's main.
			if from := d.stages[0][0].args; !strings.HasPrefix(from, "golang:${GO_VERSION}") && !strings.HasPrefix(from, "golang:1.26") {
				t.Errorf("%s: build stage FROM %q, want golang:1.26", src, from)
			}
			if !slices.Contains(d.all, instruction{"ARG", "GO_VERSION=1.26"}) && !strings.HasPrefix(d.stages[0][0].args, "golang:1.26") {
				t.Errorf("%s: Go version is not 1.26", src)
			}
			var built, copiedPkg, copiedSvc bool
			for _, in := range d.stages[0] {
				if in.cmd == "RUN" && strings.Contains(in.args, "CGO_ENABLED=0 GOWORK=off go build -trimpath") &&
					strings.Contains(in.args, "-o /out/"+svc+" ./cmd/"+svc) && strings.Contains(in.args, "services/"+svc) {
					built = true
				}
				copiedPkg = copiedPkg || (in.cmd == "COPY" && in.args == "pkg/ pkg/")
				copiedSvc = copiedSvc || (in.cmd == "COPY" && in.args == "services/"+svc+"/ services/"+svc+"/")
			}
			if !built || !copiedPkg || !copiedSvc {
				t.Errorf("%s: the build stage must COPY pkg/ and services/%s/ and run CGO_ENABLED=0 GOWORK=off go build -trimpath ... -o /out/%s ./cmd/%s (built %v, pkg %v, svc %v)",
					src, svc, svc, svc, built, copiedPkg, copiedSvc)
			}
			// Runtime: distroless static (nonroot) or scratch, as a numeric non-root user.
			if base := d.final()[0].args; !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
				t.Errorf("%s: runtime image %q, want distroless static or scratch", src, base)
			}
			users := d.get("USER")
			if len(users) == 0 {
				t.Errorf("%s: no USER in the runtime stage", src)
			} else {
				uid, _, _ := strings.Cut(users[len(users)-1], ":")
				if n, err := strconv.Atoi(uid); err != nil || n == 0 {
					t.Errorf("%s: USER %q: want a numeric non-root uid (Kubernetes' runAsNonRoot can only verify numbers)", src, users[len(users)-1])
				}
			}
			copies := d.get("COPY")
			ep, _ := execForm(d.get("ENTRYPOINT")[0])
			if !slices.Contains(copies, "--from=build /out/"+svc+" "+ep[0]) {
				t.Errorf("%s: ENTRYPOINT %s is not the binary built from ./cmd/%s (COPY --from=build /out/%s %s)", src, ep[0], svc, svc, ep[0])
			}

			checkAccepted(t, l)
			if l.value("admin-addr") == "" {
				t.Errorf("%s: no ADMIN_ADDR: the admin listener (/healthz, /readyz, /metrics) must listen", src)
			}
			// Every listener is EXPOSEd and listens on all interfaces; every EXPOSEd port is a listener.
			var exposed []int
			for _, e := range d.get("EXPOSE") {
				for _, p := range strings.Fields(e) {
					n, _ := strconv.Atoi(strings.TrimSuffix(p, "/tcp"))
					exposed = append(exposed, n)
					if l.listenerByPort(n) == "" {
						t.Errorf("%s: EXPOSE %d is no listener of %s (%v)", src, n, svc, l.listeners())
					}
				}
			}
			for kind, addr := range l.listeners() {
				if !slices.Contains(exposed, portOf(addr)) {
					t.Errorf("%s: the %s listener %s is not EXPOSEd", src, kind, addr)
				}
				if host, _, _ := net.SplitHostPort(addr); host != "0.0.0.0" && host != "" && host != "::" {
					t.Errorf("%s: the %s listener %s is not reachable from outside the container", src, kind, addr)
				}
			}
			checkHealthcheck(t, d, l)
		})
	}
}

// healthcheckArgv returns the HEALTHCHECK command (exec form).
func healthcheckArgv(t *testing.T, d dockerfile) []string {
	t.Helper()
	hc := d.get("HEALTHCHECK")
	if len(hc) != 1 {
		t.Fatalf("%s: want one HEALTHCHECK, got %d", d.path, len(hc))
	}
	_, cmd, ok := strings.Cut(hc[0], "CMD ")
	if !ok {
		t.Fatalf("%s: HEALTHCHECK without CMD: %s", d.path, hc[0])
	}
	argv, err := execForm(strings.TrimSpace(cmd))
	if err != nil {
		t.Fatalf("%s: HEALTHCHECK: %v (distroless has no shell: use the exec form)", d.path, err)
	}
	return argv
}

// checkHealthcheck: the probe is the healthprobe binary built in the image, aimed at a gRPC listener (or
// at /healthz or /readyz of the admin listener) of the configuration l.
func checkHealthcheck(t *testing.T, d dockerfile, l launch) {
	t.Helper()
	argv := healthcheckArgv(t, d)
	if !slices.Contains(d.get("COPY"), "--from=build /out/healthprobe "+argv[0]) {
		t.Errorf("%s: HEALTHCHECK runs %s, which is not the healthprobe built in the image", d.path, argv[0])
	}
	kind, port := probeTarget(t, d.path, argv[1:])
	if got := l.listenerByPort(port); !matchesKind(kind, got) {
		t.Errorf("%s: HEALTHCHECK probes port %d as %s, but in %s that port is %q (listeners %v)", d.path, port, kind, l.source, got, l.listeners())
	}
}

// probeTarget parses healthprobe's arguments into the kind of listener it asks and the port.
func probeTarget(t *testing.T, src string, args []string) (kind string, port int) {
	t.Helper()
	for _, a := range args {
		switch {
		case strings.HasPrefix(a, "-grpc-addr="):
			addr := strings.TrimPrefix(a, "-grpc-addr=")
			if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" && host != "localhost" {
				t.Errorf("%s: the health probe must ask the loopback address, not %s", src, addr)
			}
			port = portOf(addr)
			kind = lisGRPC
		case strings.HasPrefix(a, "-http-url="):
			u := strings.TrimPrefix(a, "-http-url=")
			rest := strings.TrimPrefix(u, "http://")
			hostport, path, _ := strings.Cut(rest, "/")
			if path != "healthz" && path != "readyz" {
				t.Errorf("%s: the health probe asks %s: want /healthz or /readyz", src, u)
			}
			port = portOf(hostport)
			kind = lisAdmin
		}
	}
	if kind == "" {
		t.Fatalf("%s: health probe arguments %v name no -grpc-addr or -http-url", src, args)
	}
	return kind, port
}

// matchesKind: a gRPC probe may ask either gRPC listener (health is served on both).
func matchesKind(probeKind, listenerKind string) bool {
	if probeKind == lisAdmin {
		return listenerKind == lisAdmin
	}
	return listenerKind == lisGRPC || listenerKind == lisInternal
}
