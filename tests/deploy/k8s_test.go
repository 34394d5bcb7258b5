package deploy

import (
	"encoding/base64"
	"net"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

var kustomizations = []string{"deploy/k8s/base", "deploy/k8s/overlays/example"}

// rendered is the output of kustomize, by kind and name.
type rendered struct {
	dir  string
	objs map[string]map[string]map[string]any
}

func (r rendered) get(kind, name string) map[string]any { return r.objs[kind][name] }

// render runs kustomize (the library kubectl embeds, pinned in go.mod, so no tool needs installing):
// the manifests are checked as they would be applied.
func render(t *testing.T, dir string) rendered {
	t.Helper()
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot, dir))
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := resources.AsYaml()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	r := rendered{dir: dir, objs: map[string]map[string]map[string]any{}}
	for _, doc := range yamlDocs(t, out) {
		kind, name := str(doc["kind"]), str(dig(doc, "metadata", "name"))
		if r.objs[kind] == nil {
			r.objs[kind] = map[string]map[string]any{}
		}
		r.objs[kind][name] = doc
	}
	return r
}

// TestKustomizeFiles: every file a kustomization names exists (kustomize would also fail, but this
// says which).
func TestKustomizeFiles(t *testing.T) {
	err := filepath.WalkDir(filepath.Join(repoRoot, "deploy", "k8s"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.Name() != "kustomization.yaml" {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		k := yamlDocs(t, data)[0]
		dir := filepath.Dir(p)
		var files []string
		for _, r := range list(k["resources"]) {
			files = append(files, str(r))
		}
		for _, pt := range list(k["patches"]) {
			if f := str(dig(pt, "path")); f != "" {
				files = append(files, f)
			}
		}
		for _, gen := range append(list(k["configMapGenerator"]), list(k["secretGenerator"])...) {
			for _, f := range append(list(dig(gen, "envs")), list(dig(gen, "files"))...) {
				s := str(f)
				if _, after, ok := strings.Cut(s, "="); ok {
					s = after
				}
				files = append(files, s)
			}
		}
		for _, f := range files {
			if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
				t.Errorf("%s names %s: %v", p, f, err)
			}
		}
		for _, gen := range list(k["secretGenerator"]) {
			for _, f := range append(list(dig(gen, "envs")), list(dig(gen, "files"))...) {
				if !strings.HasSuffix(str(f), ".example") {
					t.Errorf("%s: secret %v from %v: the repository holds only *.example secrets", p, dig(gen, "name"), f)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// deploymentLaunch is how Kubernetes starts svc's container: the image's ENTRYPOINT and ENV, the
// container's args, envFrom and env (ConfigMaps and Secrets resolved), and its mounted Secret files.
func deploymentLaunch(t *testing.T, r rendered, svc string) (launch, map[string]any) {
	t.Helper()
	dep := r.get("Deployment", svc)
	if dep == nil {
		t.Fatalf("%s: no Deployment %s", r.dir, svc)
	}
	spec := dig(dep, "spec", "template", "spec")
	containers := list(dig(spec, "containers"))
	if len(containers) != 1 || str(dig(containers[0], "name")) != svc {
		t.Fatalf("%s: Deployment %s: want one container named %s", r.dir, svc, svc)
	}
	c := containers[0].(map[string]any)
	img, _ := imageLaunch(t, svc)
	l := launch{source: r.dir + " Deployment " + svc, service: svc, env: map[string]string{}, envFrom: map[string]string{}, files: map[string][]byte{}}
	for k, v := range img.env {
		l.env[k], l.envFrom[k] = v, "Dockerfile ENV"
	}
	l.args = img.args
	if cmd := list(c["command"]); len(cmd) > 0 {
		t.Errorf("%s: command overrides the image's ENTRYPOINT", l.source)
	}
	for _, a := range list(c["args"]) {
		l.args = append(l.args, str(a))
	}
	secretValue := func(name, key string) (string, bool) {
		s := r.get("Secret", name)
		if s == nil {
			t.Errorf("%s: Secret %s does not exist", l.source, name)
			return "", false
		}
		if v, ok := dig(s, "stringData", key).(string); ok {
			return v, true
		}
		b, err := base64.StdEncoding.DecodeString(str(dig(s, "data", key)))
		if err != nil || dig(s, "data", key) == nil {
			t.Errorf("%s: Secret %s has no key %s", l.source, name, key)
			return "", false
		}
		return string(b), true
	}
	for _, ef := range list(c["envFrom"]) {
		if name := str(dig(ef, "configMapRef", "name")); name != "" {
			cm := r.get("ConfigMap", name)
			if cm == nil {
				t.Errorf("%s: ConfigMap %s does not exist", l.source, name)
			}
			for k, v := range dig(cm, "data").(map[string]any) {
				l.env[k], l.envFrom[k] = str(v), "ConfigMap "+name
			}
		}
		if name := str(dig(ef, "secretRef", "name")); name != "" {
			for k := range dig(r.get("Secret", name), "data").(map[string]any) {
				l.env[k], _ = secretValue(name, k)
				l.envFrom[k] = "Secret " + name
			}
		}
	}
	for _, e := range list(c["env"]) {
		name := str(dig(e, "name"))
		switch {
		case dig(e, "valueFrom", "secretKeyRef") != nil:
			ref := dig(e, "valueFrom", "secretKeyRef")
			l.env[name], _ = secretValue(str(dig(ref, "name")), str(dig(ref, "key")))
			l.envFrom[name] = "Secret " + str(dig(ref, "name"))
		case dig(e, "valueFrom", "configMapKeyRef") != nil:
			ref := dig(e, "valueFrom", "configMapKeyRef")
			l.env[name] = str(dig(r.get("ConfigMap", str(dig(ref, "name"))), "data", str(dig(ref, "key"))))
			l.envFrom[name] = "ConfigMap " + str(dig(ref, "name"))
		default:
			l.env[name], l.envFrom[name] = str(dig(e, "value")), "env"
		}
	}
	volumes := map[string]any{}
	for _, v := range list(dig(spec, "volumes")) {
		volumes[str(dig(v, "name"))] = v
	}
	for _, m := range list(c["volumeMounts"]) {
		v := volumes[str(dig(m, "name"))]
		if v == nil {
			t.Errorf("%s: volumeMount %v has no volume", l.source, dig(m, "name"))
			continue
		}
		secretName := str(dig(v, "secret", "secretName"))
		if secretName == "" {
			continue
		}
		if dig(m, "subPath") != nil {
			t.Errorf("%s: %s is mounted with subPath: Kubernetes never updates those, so rotation would need a restart", l.source, secretName)
		}
		for k := range dig(r.get("Secret", secretName), "data").(map[string]any) {
			val, _ := secretValue(secretName, k)
			l.files[path.Join(str(dig(m, "mountPath")), k)] = []byte(val)
		}
	}
	return l, c
}

// containerPorts returns the container's ports by name and the list of numbers.
func containerPorts(c map[string]any) (map[string]int, []int) {
	byName := map[string]int{}
	var nums []int
	for _, p := range list(c["ports"]) {
		n := toInt(dig(p, "containerPort"))
		nums = append(nums, n)
		if name := str(dig(p, "name")); name != "" {
			byName[name] = n
		}
	}
	return byName, nums
}

func TestKubernetes(t *testing.T) {
	for _, dir := range kustomizations {
		t.Run(path.Base(dir), func(t *testing.T) {
			r := render(t, dir)
			launches := map[string]launch{}
			for _, svc := range services {
				launches[svc], _ = deploymentLaunch(t, r, svc)
			}
			for _, svc := range services {
				t.Run(svc, func(t *testing.T) { checkDeployment(t, r, svc, launches) })
			}
		})
	}
}

func checkDeployment(t *testing.T, r rendered, svc string, launches map[string]launch) {
	l, c := deploymentLaunch(t, r, svc)
	src := l.source
	dep := r.get("Deployment", svc)
	spec := dig(dep, "spec", "template", "spec")
	podLabels, _ := dig(dep, "spec", "template", "metadata", "labels").(map[string]any)
	if !selects(dig(dep, "spec", "selector", "matchLabels"), podLabels) {
		t.Errorf("%s: the selector does not match the pod labels", src)
	}

	checkAccepted(t, l)
	checkFileFlags(t, l)
	checkHMACKeys(t, l)
	checkSealKeys(t, l)
	checkProductionSettings(t, l)
	if l.value("admin-addr") == "" {
		t.Errorf("%s: no --admin-addr: the probes and /metrics need the admin listener", src)
	}

	// Ports: every containerPort is a listener, every listener a named containerPort.
	byName, nums := containerPorts(c)
	for _, n := range nums {
		if l.listenerByPort(n) == "" {
			t.Errorf("%s: containerPort %d is no listener (%v)", src, n, l.listeners())
		}
	}
	for kind, addr := range l.listeners() {
		if byName[kind] != portOf(addr) {
			t.Errorf("%s: the %s listener %s has no containerPort named %s", src, kind, addr, kind)
		}
	}

	// Probes: readiness and liveness at least; gRPC probes on a gRPC listener, HTTP on the admin one.
	for _, probe := range []string{"startupProbe", "readinessProbe", "livenessProbe"} {
		p := dig(c, probe)
		if p == nil {
			if probe != "startupProbe" {
				t.Errorf("%s: no %s", src, probe)
			}
			continue
		}
		kind, port, _ := probeSpec(p, byName)
		if got := l.listenerByPort(port); kind == "" || !matchesKind(kind, got) {
			t.Errorf("%s: %s asks port %d as %q, which is the %q listener", src, probe, port, kind, got)
		}
		if hp := str(dig(p, "httpGet", "path")); dig(p, "httpGet") != nil && hp != "/healthz" && hp != "/readyz" {
			t.Errorf("%s: %s asks %s: want /healthz or /readyz", src, probe, hp)
		}
	}

	// Security context, resources, graceful shutdown.
	sc := dig(c, "securityContext")
	if dig(sc, "runAsNonRoot") != true && dig(spec, "securityContext", "runAsNonRoot") != true {
		t.Errorf("%s: runAsNonRoot is not set", src)
	}
	if dig(sc, "readOnlyRootFilesystem") != true || dig(sc, "allowPrivilegeEscalation") != false ||
		!slices.Contains(list(dig(sc, "capabilities", "drop")), any("ALL")) {
		t.Errorf("%s: want readOnlyRootFilesystem, no privilege escalation and capabilities drop ALL", src)
	}
	for _, kind := range []string{"requests", "limits"} {
		for _, res := range []string{"cpu", "memory"} {
			if dig(c, "resources", kind, res) == nil {
				t.Errorf("%s: no resources.%s.%s", src, kind, res)
			}
		}
	}
	shutdown, err := time.ParseDuration(l.value("shutdown-timeout"))
	if err != nil {
		t.Errorf("%s: shutdown-timeout %q: %v", src, l.value("shutdown-timeout"), err)
	}
	if grace := toInt(dig(spec, "terminationGracePeriodSeconds")); time.Duration(grace)*time.Second <= shutdown {
		t.Errorf("%s: terminationGracePeriodSeconds %d must exceed --shutdown-timeout %s", src, grace, shutdown)
	}

	// Service: selects the pods, named ports whose targets are named container ports.
	s := r.get("Service", svc)
	if s == nil {
		t.Fatalf("%s: no Service %s", r.dir, svc)
	}
	if typ := str(dig(s, "spec", "type")); typ != "" && typ != "ClusterIP" {
		t.Errorf("Service %s: type %s, want ClusterIP", svc, typ)
	}
	if !selects(dig(s, "spec", "selector"), podLabels) {
		t.Errorf("Service %s: the selector does not match the pods of Deployment %s", svc, svc)
	}
	exposedKinds := map[string]bool{}
	for _, p := range list(dig(s, "spec", "ports")) {
		name, target := str(dig(p, "name")), dig(p, "targetPort")
		if name == "" {
			t.Errorf("Service %s: port %v has no name", svc, dig(p, "port"))
		}
		n, ok := byName[str(target)]
		if !ok {
			if n = toInt(target); !slices.Contains(nums, n) {
				t.Errorf("Service %s: port %s targets %v, which is no containerPort of %s", svc, name, target, svc)
				continue
			}
		}
		exposedKinds[l.listenerByPort(n)] = true
	}
	for kind := range l.listeners() {
		if kind != lisAdmin && !exposedKinds[kind] {
			t.Errorf("Service %s: the %s listener is not a port of the Service", svc, kind)
		}
	}

	// Peers: the peer's Service, on the port that reaches the peer's internal listener (the edge's: the
	// public one).
	for flag, peer := range peerFlags {
		if _, ok := binaries[svc].flags[flag]; !ok {
			continue
		}
		host, port, err := net.SplitHostPort(l.value(flag))
		if err != nil {
			t.Errorf("%s: --%s=%s: %v", src, flag, l.value(flag), err)
			continue
		}
		want := peerTarget(svc, launches[peer])
		if target := servicePortTarget(t, r, peer, host, toInt(port)); target != portOf(want) {
			t.Errorf("%s: --%s=%s does not reach %s's listener %s", src, flag, l.value(flag), peer, want)
		}
	}

	// PodDisruptionBudget and HorizontalPodAutoscaler.
	pdb := r.get("PodDisruptionBudget", svc)
	if pdb == nil || toInt(dig(pdb, "spec", "minAvailable")) != 1 || !selects(dig(pdb, "spec", "selector", "matchLabels"), podLabels) {
		t.Errorf("%s: want a PodDisruptionBudget %s with minAvailable 1 selecting its pods", r.dir, svc)
	}
	hpa := r.get("HorizontalPodAutoscaler", svc)
	if hpa == nil {
		t.Fatalf("%s: no HorizontalPodAutoscaler %s", r.dir, svc)
	}
	if str(dig(hpa, "spec", "scaleTargetRef", "kind")) != "Deployment" || str(dig(hpa, "spec", "scaleTargetRef", "name")) != svc {
		t.Errorf("HPA %s does not scale Deployment %s", svc, svc)
	}
	minR, maxR, replicas := toInt(dig(hpa, "spec", "minReplicas")), toInt(dig(hpa, "spec", "maxReplicas")), toInt(dig(dep, "spec", "replicas"))
	if minR < 2 || maxR < minR || (dig(dep, "spec", "replicas") != nil && (replicas < minR || replicas > maxR)) {
		t.Errorf("HPA %s: min %d max %d, Deployment replicas %d: want 2 <= min <= replicas <= max", svc, minR, maxR, replicas)
	}
	var cpu bool
	for _, m := range list(dig(hpa, "spec", "metrics")) {
		cpu = cpu || str(dig(m, "resource", "name")) == "cpu"
	}
	if !cpu {
		t.Errorf("HPA %s has no cpu metric", svc)
	}
}

// probeSpec returns the kind of listener a probe asks (grpc or admin) and its port.
func probeSpec(p any, byName map[string]int) (kind string, port int, path string) {
	if g := dig(p, "grpc"); g != nil {
		return lisGRPC, toInt(dig(g, "port")), ""
	}
	if h := dig(p, "httpGet"); h != nil {
		port := toInt(dig(h, "port"))
		if n, ok := byName[str(dig(h, "port"))]; ok {
			port = n
		}
		return lisAdmin, port, str(dig(h, "path"))
	}
	return "", -1, ""
}

// servicePortTarget returns the containerPort the Service host's port reaches, or -1.
func servicePortTarget(t *testing.T, r rendered, svc, host string, port int) int {
	t.Helper()
	if host != svc {
		t.Errorf("peer address host %s is not the Service %s", host, svc)
		return -1
	}
	_, c := deploymentLaunch(t, r, svc)
	byName, _ := containerPorts(c)
	for _, p := range list(dig(r.get("Service", svc), "spec", "ports")) {
		if toInt(dig(p, "port")) != port {
			continue
		}
		if n, ok := byName[str(dig(p, "targetPort"))]; ok {
			return n
		}
		return toInt(dig(p, "targetPort"))
	}
	return -1
}

// selects tells whether every label of the selector is on the pod.
func selects(selector any, labels map[string]any) bool {
	m, ok := selector.(map[string]any)
	if !ok || len(m) == 0 {
		return false
	}
	for k, v := range m {
		if labels[k] != v {
			return false
		}
	}
	return true
}
