package deploy

import (
	"path"
	"testing"
)

// TestIngress: an Ingress a kustomization renders sends the page's host to the edge's public HTTP
// listener (through its Service's port, by name or number), ends TLS for that host, and the edge
// behind it believes X-Forwarded-For from the ingress controller only (--trusted-proxies set), or
// every browser behind the controller would share one per-client limit.
func TestIngress(t *testing.T) {
	seen := 0
	for _, dir := range kustomizations {
		r := render(t, dir)
		for name, ing := range r.objs["Ingress"] {
			seen++
			t.Run(path.Base(dir)+"/"+name, func(t *testing.T) {
				tlsHosts := map[string]bool{}
				for _, tl := range list(dig(ing, "spec", "tls")) {
					for _, h := range list(dig(tl, "hosts")) {
						tlsHosts[str(h)] = true
					}
				}
				for _, rule := range list(dig(ing, "spec", "rules")) {
					host := str(dig(rule, "host"))
					if !tlsHosts[host] {
						t.Errorf("host %q is served without TLS", host)
					}
					for _, p := range list(dig(rule, "http", "paths")) {
						svc := str(dig(p, "backend", "service", "name"))
						if svc != "edge" {
							t.Errorf("host %q routes to %q: only the edge faces browsers and portals", host, svc)
							continue
						}
						l, c := deploymentLaunch(t, r, svc)
						byName, _ := containerPorts(c)
						port := -1
						for _, sp := range list(dig(r.get("Service", svc), "spec", "ports")) {
							if str(dig(sp, "name")) == str(dig(p, "backend", "service", "port", "name")) ||
								toInt(dig(sp, "port")) == toInt(dig(p, "backend", "service", "port", "number")) {
								port = byName[str(dig(sp, "targetPort"))]
							}
						}
						if kind := l.listenerByPort(port); kind != lisHTTP {
							t.Errorf("host %q reaches the edge's port %d (%q), not its public HTTP listener", host, port, kind)
						}
						if l.value("trusted-proxies") == "" {
							t.Errorf("the edge behind Ingress %s has no --trusted-proxies: X-Forwarded-For is ignored, so every "+
								"client behind the ingress controller shares one rate limit", name)
						}
					}
				}
			})
		}
	}
	if seen == 0 {
		t.Fatal("no kustomization renders an Ingress for the edge")
	}
}
