package devserver

import (
	"os"
	"strings"
	"testing"
)

// Both development setups on PostgreSQL (icpdev --store=postgres and make run-postgres) use one HMAC
// key and one seal key, so either one verifies the codes the other sent and opens what it queued.
func TestRunPostgresUsesTheDevKey(t *testing.T) {
	script, err := os.ReadFile("../../../scripts/run-postgres.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(script), "HMAC_KEYS:-"+DevHMACKey+"}") {
		t.Fatalf("scripts/run-postgres.sh does not default HMAC_KEYS to DevHMACKey")
	}
	if !strings.Contains(string(script), "SEAL_KEYS:-"+DevSealKey+"}") {
		t.Fatalf("scripts/run-postgres.sh does not default SEAL_KEYS to DevSealKey")
	}
}
