// Package pgcluster runs throwaway PostgreSQL servers of one's own (initdb into a temporary directory,
// a free loopback port) and the moves of a failover: streaming standbys from pg_basebackup, SIGKILL
// of a primary and all its processes, promotion, re-pointing a standby, pg_rewind. The store tests
// (pgtest.NewCluster) and the failover drill (make chaos) use it; never for the shared server.
// It needs PostgreSQL's server binaries (initdb, pg_ctl, pg_basebackup, pg_rewind) on the PATH or in
// /usr/lib/postgresql/*/bin. As root it runs them as the postgres user, since PostgreSQL refuses root.
package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is one PostgreSQL server (a data directory and its port).
type Server struct {
	Name string // cluster_name, and the application_name a standby reports to its primary
	Dir  string // the data directory
	Port int
	root string // the temporary directory holding Dir, removed by Remove
	bin  string
	as   *user.User // nil: the current user
}

// baseConf is every server's: loopback only, its socket beside its data directory (never in it:
// pg_rewind and pg_basebackup would meet it), small, and the settings a failover needs (hot standbys;
// for pg_rewind, wal_log_hints and the WAL back to the last common checkpoint kept).
func baseConf(name string, port int, root string) []string {
	return []string{
		"port = " + strconv.Itoa(port),
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + root + "'",
		"wal_keep_size = '1GB'",
		"cluster_name = '" + name + "'",
		"shared_buffers = 32MB",
		"wal_log_hints = on",
		"hot_standby = on",
		"max_wal_senders = 10",
	}
}

func newServer(name string) (*Server, error) {
	bin, err := serverBinDir()
	if err != nil {
		return nil, err
	}
	s := &Server{Name: name, bin: bin}
	if os.Geteuid() == 0 {
		if s.as, err = user.Lookup("postgres"); err != nil {
			return nil, fmt.Errorf("a throwaway cluster as root needs the postgres user: %w", err)
		}
	}
	if s.root, err = os.MkdirTemp("", "icp-pgcluster-"+name+"-"); err != nil {
		return nil, err
	}
	if err := os.Chmod(s.root, 0o755); err != nil {
		return nil, err
	}
	if err := s.chown(s.root); err != nil { // the server writes its log beside the data directory
		return nil, err
	}
	s.Dir = filepath.Join(s.root, "data")
	if err := os.Mkdir(s.Dir, 0o700); err != nil {
		return nil, err
	}
	if err := s.chown(s.Dir); err != nil {
		return nil, err
	}
	if s.Port, err = freePort(); err != nil {
		return nil, err
	}
	return s, nil
}

// Init initialises a new primary named name with the given postgresql.conf lines added (not started).
func Init(name string, conf ...string) (*Server, error) {
	s, err := newServer(name)
	if err != nil {
		return nil, err
	}
	if err := s.run("initdb", "--auth=trust", "-U", "postgres", "--no-sync", "-D", s.Dir); err != nil {
		s.Remove()
		return nil, err
	}
	if err := s.AddConf(append(baseConf(name, s.Port, s.root), conf...)...); err != nil {
		s.Remove()
		return nil, err
	}
	return s, nil
}

// Standby makes a streaming standby of the running primary with pg_basebackup (-R: standby.signal and
// primary_conninfo), named name, with conf added (not started).
func Standby(primary *Server, name string, conf ...string) (*Server, error) {
	s, err := newServer(name)
	if err != nil {
		return nil, err
	}
	if err := s.run("pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres",
		"-D", s.Dir, "-R", "-X", "stream", "--no-sync"); err != nil {
		s.Remove()
		return nil, err
	}
	// Later lines win: the copied primary's port, socket and name are replaced.
	if err := s.AddConf(append(baseConf(name, s.Port, s.root), conf...)...); err != nil {
		s.Remove()
		return nil, err
	}
	return s, nil
}

// AddConf appends lines to postgresql.conf (read at the next start or reload).
func (s *Server) AddConf(lines ...string) error {
	f, err := os.OpenFile(filepath.Join(s.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("\n" + strings.Join(lines, "\n") + "\n")
	return errors.Join(err, f.Close())
}

// URL is the connection string of database db on the server (user postgres, trust).
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// ConnInfo is the libpq key/value form a standby's primary_conninfo or pg_rewind's source takes.
func (s *Server) ConnInfo() string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres", s.Port)
}

// Start starts the server and waits until it accepts connections (or, for a standby, until it runs).
func (s *Server) Start() error {
	return s.run("pg_ctl", "-D", s.Dir, "-l", filepath.Join(s.root, "server.log"), "-w", "-t", "60", "start")
}

// Stop stops the server with mode smart, fast or immediate; a stopped server is left alone.
func (s *Server) Stop(mode string) error {
	if _, err := os.Stat(filepath.Join(s.Dir, "postmaster.pid")); err != nil {
		return nil
	}
	return s.run("pg_ctl", "-D", s.Dir, "-m", mode, "-w", "stop")
}

// Kill sends SIGKILL to the postmaster and every process it started, as when the machine dies: no
// backend lingers to answer a client after the postmaster is gone.
func (s *Server) Kill() error {
	pid, err := s.postmasterPID()
	if err != nil {
		return err
	}
	children := childrenOf(pid)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill postmaster %d: %w", pid, err)
	}
	for _, c := range children {
		_ = syscall.Kill(c, syscall.SIGKILL)
	}
	for range 100 { // the processes are gone once /proc forgets them
		if !alive(pid) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Promote makes a standby the primary and waits until it accepts writes.
func (s *Server) Promote() error {
	return s.run("pg_ctl", "-D", s.Dir, "-w", "-t", "60", "promote")
}

// Rewind makes this stopped former primary a standby of source: pg_rewind (which first completes a
// crashed server's recovery itself), then standby.signal and a primary_conninfo pointing at source.
// pg_rewind copies the source's configuration files too: the server's own port, socket and name are
// appended again, and the source's ALTER SYSTEM settings (postgresql.auto.conf) are dropped.
func (s *Server) Rewind(source *Server) error {
	// A just promoted source names its new timeline in its control file only after a checkpoint;
	// before it, pg_rewind sees one timeline and rewinds nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, source.URL("postgres"))
	if err != nil {
		return fmt.Errorf("checkpoint on %s: %w", source.Name, err)
	}
	_, err = conn.Exec(ctx, "CHECKPOINT")
	_ = conn.Close(ctx)
	if err != nil {
		return fmt.Errorf("checkpoint on %s: %w", source.Name, err)
	}
	if err := s.run("pg_rewind", "--target-pgdata="+s.Dir, "--source-server="+source.ConnInfo()); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "postgresql.auto.conf"), nil, 0o600); err != nil {
		return err
	}
	if err := s.AddConf(baseConf(s.Name, s.Port, s.root)...); err != nil {
		return err
	}
	return s.Follow(source)
}

// Follow points a stopped server's replication at primary (standby.signal, primary_conninfo); it
// takes effect at the next Start. A running standby is re-pointed with ALTER SYSTEM instead.
func (s *Server) Follow(primary *Server) error {
	signal := filepath.Join(s.Dir, "standby.signal")
	if err := os.WriteFile(signal, nil, 0o600); err != nil {
		return err
	}
	if err := s.chown(signal); err != nil {
		return err
	}
	return s.AddConf("primary_conninfo = '" + primary.ConnInfo() + "'")
}

// Remove stops the server (immediately) and deletes its directory.
func (s *Server) Remove() {
	_ = s.Stop("immediate")
	if s.root != "" {
		_ = os.RemoveAll(s.root)
	}
}

// Log is the server's log so far (for a failure's report).
func (s *Server) Log() string {
	data, _ := os.ReadFile(filepath.Join(s.root, "server.log"))
	return string(data)
}

func (s *Server) postmasterPID() (int, error) {
	data, err := os.ReadFile(filepath.Join(s.Dir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("%s is not running: %w", s.Name, err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	return strconv.Atoi(strings.TrimSpace(first))
}

func (s *Server) run(tool string, args ...string) error {
	cmd := exec.Command(filepath.Join(s.bin, tool), args...)
	if s.as != nil {
		cmd = exec.Command("runuser", append([]string{"-u", s.as.Username, "--", filepath.Join(s.bin, tool)}, args...)...)
	}
	cmd.Dir = os.TempDir()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", tool, strings.Join(args, " "), err, out)
	}
	return nil
}

func (s *Server) chown(path string) error {
	if s.as == nil {
		return nil
	}
	uid, _ := strconv.Atoi(s.as.Uid)
	gid, _ := strconv.Atoi(s.as.Gid)
	return os.Chown(path, uid, gid)
}

// childrenOf lists the processes whose parent is pid (from /proc).
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
		i := strings.LastIndexByte(string(stat), ')')
		fields := strings.Fields(string(stat)[i+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	fields := strings.Fields(string(stat)[i+1:])
	return len(fields) > 0 && fields[0] != "Z"
}

// serverBinDir finds the directory of initdb and pg_ctl (Debian keeps them out of the PATH).
func serverBinDir() (string, error) {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Dir(real), nil
		}
		return filepath.Dir(p), nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- { // the newest version
		if _, err := os.Stat(filepath.Join(dirs[i], "pg_ctl")); err == nil {
			return dirs[i], nil
		}
	}
	return "", errors.New("a throwaway cluster needs PostgreSQL's server binaries (pg_ctl, initdb): install postgresql")
}

// freePort returns a loopback port nobody listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
