// Command edge runs the HTTP/JSON edge: REST for every public RPC of FilingService and
// VerificationService, a client of their gRPC listeners, with the OpenAPI document at /openapi.json.
package main

import (
	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/services/edge/server"
)

func main() { config.Main("edge", server.Run) }
