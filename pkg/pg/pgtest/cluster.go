package pgtest

import (
	"testing"

	"github.com/icpverify/icpverify/pkg/pg/pgcluster"
)

// Cluster is a throwaway PostgreSQL server of a test's own (pgcluster), for tests that change server
// settings, promote, or stop the server: never the shared one.
type Cluster struct {
	*pgcluster.Server
	t testing.TB
}

// NewCluster initialises and starts a cluster with the given postgresql.conf lines added; it is
// stopped (immediately) and removed when the test ends. fsync is off: only processes die in a test.
func NewCluster(t testing.TB, conf ...string) *Cluster {
	t.Helper()
	s, err := pgcluster.Init("pgtest", append([]string{"fsync = off"}, conf...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Remove)
	c := &Cluster{Server: s, t: t}
	c.Start()
	return c
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	if err := c.Server.Start(); err != nil {
		c.t.Fatal(err)
	}
}

// Stop stops the server with mode smart, fast or immediate; a stopped server is left alone.
func (c *Cluster) Stop(mode string) {
	c.t.Helper()
	if err := c.Server.Stop(mode); err != nil {
		c.t.Fatal(err)
	}
}
