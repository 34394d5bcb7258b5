package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

// cpuOf snapshots the CPU seconds of every process of the run.
var cpuOf func() map[string]float64

// statsDB and statsName read pg_stat_database of the suite's database.
var (
	statsDB   *pgxpool.Pool
	statsName string
)

var tpsRE = regexp.MustCompile(`tps = ([0-9.]+)`)

// pgbenchDB is pgbench's own database, initialized (-i) once for the whole benchmark.
type pgbenchDB struct {
	adminURL, name string
	conn           []string
	clients        int
}

func newPgbench(ctx context.Context, o options) (*pgbenchDB, error) {
	cfg, err := pgx.ParseConfig(o.adminURL)
	if err != nil {
		return nil, err
	}
	name, _, err := suite.CreateDatabase(ctx, o.adminURL, "icpbench_pgbench")
	if err != nil {
		return nil, err
	}
	p := &pgbenchDB{adminURL: o.adminURL, name: name, clients: o.clients,
		conn: []string{"-h", cfg.Host, "-p", strconv.Itoa(int(cfg.Port)), "-U", cfg.User}}
	logf("pgbench -i -s %d", o.pgbenchScale)
	init := exec.CommandContext(ctx, "pgbench", append(append([]string{"-i", "-q", "-s", strconv.Itoa(o.pgbenchScale)}, p.conn...), name)...)
	if out, err := init.CombinedOutput(); err != nil {
		p.drop()
		return nil, fmt.Errorf("pgbench -i: %v\n%s", err, out)
	}
	return p, nil
}

func (p *pgbenchDB) drop() { _ = suite.DropDatabase(context.Background(), p.adminURL, p.name) }

// run runs the built-in simple-update script, prepared, for d (whole seconds) and returns its tps.
func (p *pgbenchDB) run(ctx context.Context, d time.Duration) (float64, error) {
	args := append([]string{"-N", "-M", "prepared", "-c", strconv.Itoa(p.clients), "-j", "2",
		"-T", strconv.Itoa(max(1, int(d.Seconds())))}, p.conn...)
	logf("pgbench %s", strings.Join(args, " "))
	out, err := exec.CommandContext(ctx, "pgbench", append(args, p.name)...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("%v\n%s", err, out)
	}
	m := tpsRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no tps in pgbench output:\n%s", out)
	}
	return strconv.ParseFloat(string(m[1]), 64)
}
