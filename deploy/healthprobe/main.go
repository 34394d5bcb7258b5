// Command healthprobe is the container health check of the service images. The runtime image is
// distroless (no shell, no curl), so the Dockerfiles build this small static binary beside the service
// and HEALTHCHECK runs it:
//
//	healthprobe -grpc-addr=127.0.0.1:50051            # grpc.health.v1 Check: exit 0 when SERVING
//	healthprobe -http-url=http://127.0.0.1:9091/readyz # admin listener: exit 0 on a 2xx answer
//
// It has its own go.mod (outside go.work) so the image build needs nothing but this folder.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func main() {
	grpcAddr := flag.String("grpc-addr", "", "gRPC address whose grpc.health.v1 service is asked (plaintext)")
	service := flag.String("service", "", "service name to ask grpc.health.v1 about (empty: the server as a whole)")
	httpURL := flag.String("http-url", "", "URL to GET instead (the admin listener's /healthz or /readyz)")
	timeout := flag.Duration("timeout", 3*time.Second, "time the whole check may take")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var err error
	switch {
	case *grpcAddr != "" && *httpURL == "":
		err = checkGRPC(ctx, *grpcAddr, *service)
	case *httpURL != "" && *grpcAddr == "":
		err = checkHTTP(ctx, *httpURL)
	default:
		err = errors.New("give exactly one of -grpc-addr and -http-url")
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "healthprobe:", err)
		os.Exit(1)
	}
}

func checkGRPC(ctx context.Context, addr, service string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: service})
	if err != nil {
		return err
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("%s: %s", addr, s)
	}
	return nil
}

func checkHTTP(ctx context.Context, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	return nil
}
