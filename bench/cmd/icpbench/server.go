package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ensureAutovacuum turns autovacuum on for the run when the server has it off, and returns the
// function that puts the setting back. Production servers run it (PostgreSQL's default): without
// it no table is ever analyzed, so every prepared statement keeps the plan it got while its table
// was empty (sequential scans over tables that grow without bound), and no dead row is reclaimed.
// A development server may have it off to make test databases cheaper; measuring there would
// measure that, not the suite.
func ensureAutovacuum(ctx context.Context, adminURL string, fig *figures) (restore func(), err error) {
	conn, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	var on, sourcefile string
	if err := conn.QueryRow(ctx, `SELECT setting, coalesce(sourcefile, '') FROM pg_settings WHERE name = 'autovacuum'`).Scan(&on, &sourcefile); err != nil {
		return nil, err
	}
	if on == "on" {
		fig.note("autovacuum: on")
		return func() {}, nil
	}
	logf("autovacuum is off on this server: turning it on for the run (ALTER SYSTEM), back off at the end")
	if _, err := conn.Exec(ctx, `ALTER SYSTEM SET autovacuum = on`); err != nil {
		return nil, fmt.Errorf("autovacuum is off and cannot be turned on (%w): run the benchmark as a superuser or turn it on", err)
	}
	if _, err := conn.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		return nil, err
	}
	fig.note("autovacuum: off on this server; turned on for the run and back off after it")
	// Back to what it was: the value from postgresql.conf (RESET), or the one ALTER SYSTEM had set.
	undo := `ALTER SYSTEM RESET autovacuum`
	if strings.HasSuffix(sourcefile, "postgresql.auto.conf") {
		undo = `ALTER SYSTEM SET autovacuum = off`
	}
	return func() {
		c, err := pgx.Connect(context.Background(), adminURL)
		if err != nil {
			logf("could not restore autovacuum: %v", err)
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), undo)
		_, _ = c.Exec(context.Background(), `SELECT pg_reload_conf()`)
	}, nil
}

// analyze runs ANALYZE on the suite's database after a bulk load, as autovacuum would have by the
// time a running system held that much data; the services' prepared statements are re-planned.
func analyze(ctx context.Context, db *pgxpool.Pool) error {
	logf("ANALYZE (the tables were just filled; autovacuum would have analyzed them in a running system)")
	_, err := db.Exec(ctx, `ANALYZE`)
	return err
}

// statements keeps pg_stat_statements per phase, when the server has the extension loaded: the
// statements that took the database's time, to bench/<phase>_statements.txt.
type statements struct {
	db      *pgxpool.Pool
	root    string
	enabled bool
}

func newStatements(ctx context.Context, db *pgxpool.Pool, root string) *statements {
	s := &statements{db: db, root: root}
	var loaded bool
	if err := db.QueryRow(ctx, `SELECT current_setting('shared_preload_libraries') LIKE '%pg_stat_statements%'`).Scan(&loaded); err != nil || !loaded {
		return s
	}
	if _, err := db.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err != nil {
		return s
	}
	s.enabled = true
	return s
}

// begin resets the counters at the start of a phase.
func (s *statements) begin(ctx context.Context) {
	if s.enabled {
		_, _ = s.db.Exec(ctx, `SELECT pg_stat_statements_reset()`)
	}
}

// end writes the phase's top statements by total execution time.
func (s *statements) end(ctx context.Context, phase string) {
	if !s.enabled {
		return
	}
	rows, err := s.db.Query(ctx, `SELECT calls, total_exec_time, rows, regexp_replace(query, '\s+', ' ', 'g')
		FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
		ORDER BY total_exec_time DESC LIMIT 25`)
	if err != nil {
		return
	}
	defer rows.Close()
	path := filepath.Join(s.root, "bench", phase+"_statements.txt")
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "-- pg_stat_statements of the %s phase: calls, total ms, ms per call, rows, statement\n", phase)
	for rows.Next() {
		var (
			calls, n int64
			total    float64
			q        string
		)
		if rows.Scan(&calls, &total, &n, &q) != nil {
			return
		}
		if len(q) > 200 {
			q = q[:200] + "…"
		}
		fmt.Fprintf(f, "%8d %10.1f %8.3f %8d  %s\n", calls, total, total/float64(max(calls, 1)), n, q)
	}
}
