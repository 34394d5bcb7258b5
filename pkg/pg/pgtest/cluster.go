package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Cluster is a throwaway PostgreSQL server of a test's own (initdb into a temporary directory, a free
// loopback port), for tests that change server settings, promote, or stop the server: never the shared
// one. It needs PostgreSQL's server binaries (initdb, pg_ctl) on the PATH or in /usr/lib/postgresql/*/bin.
// As root it runs them as the postgres user, since PostgreSQL refuses to run as root.
type Cluster struct {
	Dir  string // the data directory
	Port int
	t    testing.TB
	bin  string
	as   *user.User // nil: the current user
}

// NewCluster initialises and starts a cluster with the given postgresql.conf lines added; it is
// stopped (immediately) and removed when the test ends.
func NewCluster(t testing.TB, conf ...string) *Cluster {
	t.Helper()
	c := &Cluster{t: t, bin: serverBinDir(t)}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("a throwaway cluster as root needs the postgres user: %v", err)
		}
		c.as = u
	}
	root, err := os.MkdirTemp("", "icp-pgtest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	c.Dir = filepath.Join(root, "data")
	if err := os.Mkdir(c.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	c.chown(c.Dir)
	c.Port = freePort(t)
	c.run("initdb", "--auth=trust", "-U", "postgres", "--no-sync", "-D", c.Dir)
	lines := append([]string{
		"port = " + strconv.Itoa(c.Port),
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + c.Dir + "'",
		"shared_buffers = 32MB",
		"fsync = off",
	}, conf...)
	f, err := os.OpenFile(filepath.Join(c.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	c.Start()
	t.Cleanup(func() { c.Stop("immediate") })
	return c
}

// URL is the connection string of database db on the cluster (user postgres, trust).
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Start starts the server and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.Dir, "-l", filepath.Join(c.Dir, "server.log"), "-w", "-t", "60", "start")
}

// Stop stops the server with mode smart, fast or immediate; a stopped server is left alone.
func (c *Cluster) Stop(mode string) {
	c.t.Helper()
	if _, err := os.Stat(filepath.Join(c.Dir, "postmaster.pid")); err != nil {
		return
	}
	c.run("pg_ctl", "-D", c.Dir, "-m", mode, "-w", "stop")
}

func (c *Cluster) run(tool string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(filepath.Join(c.bin, tool), args...)
	if c.as != nil {
		cmd = exec.Command("runuser", append([]string{"-u", c.as.Username, "--", filepath.Join(c.bin, tool)}, args...)...)
	}
	cmd.Dir = os.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("%s %s: %v\n%s", tool, strings.Join(args, " "), err, out)
	}
}

func (c *Cluster) chown(path string) {
	if c.as == nil {
		return
	}
	uid, _ := strconv.Atoi(c.as.Uid)
	gid, _ := strconv.Atoi(c.as.Gid)
	if err := os.Chown(path, uid, gid); err != nil {
		c.t.Fatal(err)
	}
}

// serverBinDir finds the directory of initdb and pg_ctl (Debian keeps them out of the PATH).
func serverBinDir(t testing.TB) string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real)
		}
		return filepath.Dir(p)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- { // the newest version
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i]
		}
	}
	t.Fatal("a throwaway cluster needs PostgreSQL's server binaries (pg_ctl, initdb): install postgresql")
	return ""
}

// freePort returns a loopback port nobody listens on now.
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
