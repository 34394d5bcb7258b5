package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

// restPhase measures Verify through the edge (POST /v1/verify, grpc-gateway in front of
// verification's public gRPC listener) with the gRPC phase's client count, wrong-check share and
// duration, over its own population seeded like the gRPC one. grpcRPS is verify_rps of this run
// (0 when the verify phase did not run): verify_rest_vs_grpc is the cost of the HTTP/JSON hop.
func restPhase(ctx context.Context, o options, fig *figures, s *suite.Suite, pop *population, grpcRPS float64) error {
	logf("starting the edge in front of filing and verification")
	edge, err := s.StartEdge(o.extra[suite.Edge]...)
	if err != nil {
		return err
	}
	// The edge is this phase's only: later phases measure the services alone.
	defer edge.Stop(20 * time.Second)
	logf("edge: %s", strings.Join(edge.Args, " "))
	// One keep-alive connection per client at most, as a portal's HTTP client pool holds them.
	tr := &http.Transport{MaxIdleConns: o.clients, MaxIdleConnsPerHost: o.clients, IdleConnTimeout: 90 * time.Second,
		DisableCompression: true}
	defer tr.CloseIdleConnections()
	rv := restVerifier{url: "http://" + edge.Addr + "/v1/verify", client: &http.Client{Transport: tr}}

	logf("REST Verify through the edge: %d clients for %s (%d%% wrong)", o.clients, o.duration, o.wrongPct)
	cpu0 := cpuSnapshot(s)
	edge0, _ := suite.CPUSeconds(edge.PID())
	profile(o, "rest", min(o.duration-3*time.Second, 20*time.Second))
	res := pop.run(ctx, o.clients, o.duration, rv.verify)
	cpu1 := cpuSnapshot(s)
	edge1, _ := suite.CPUSeconds(edge.PID())
	rss, _ := edge.RSSKiB()
	if !edge.Running() {
		return fmt.Errorf("the edge exited during the run:\n%s", edge.Output())
	}

	fig.add("verify_rest_rps", res.rps(), "rps")
	fig.add("verify_rest_p50_ms", ms(res.pct(50)), "ms")
	fig.add("verify_rest_p99_ms", ms(res.pct(99)), "ms")
	fig.add("verify_rest_unexpected_errors", float64(res.errs), "count")
	cpuCores(fig, "verify_rest", cpu0, cpu1, res.elapsed)
	fig.add("verify_rest_cpu_cores_edge", (edge1-edge0)/res.elapsed.Seconds(), "cores")
	fig.add("rss_mb_edge_rest_end", float64(rss)/1024, "MB")
	if grpcRPS > 0 && res.rps() > 0 {
		fig.add("verify_rest_vs_grpc", res.rps()/grpcRPS, "ratio")
	}
	return nil
}

// restVerifier calls Verify as a REST client of the edge does.
type restVerifier struct {
	url    string
	client *http.Client
}

// restVerifyBody is the JSON body of POST /v1/verify: the VerifyRequest fields under their JSON
// (lowerCamelCase) names, as the edge's OpenAPI document names them.
type restVerifyBody struct {
	Phone  string `json:"phone"`
	Code   string `json:"code"`
	IDTail string `json:"idTail"`
}

// verify POSTs one check. A 200 is a pass; an error answer's google.rpc.Status JSON becomes the
// status error it carries (code, message, ErrorInfo), so it is judged as the gRPC phase judges it.
func (r restVerifier) verify(ctx context.Context, _ int64, req *verificationv1.VerifyRequest) error {
	body, err := json.Marshal(restVerifyBody{Phone: req.GetPhone(), Code: req.GetCode(), IDTail: req.GetIdTail()})
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// Read to the end: only a drained body lets the connection be reused.
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var st spb.Status
	if err := protojson.Unmarshal(raw, &st); err != nil || st.GetCode() == 0 {
		return fmt.Errorf("HTTP %d: %.200s", resp.StatusCode, raw)
	}
	return status.FromProto(&st).Err()
}
