package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/pg/pgcluster"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

// drillPGFailover: three throwaway PostgreSQL servers (a primary and two streaming standbys), the four
// services on one multi-host URL (target_session_attrs=read-write), a stream of orders and checks;
// the primary and all its processes get SIGKILL, the standby that received the most WAL is promoted
// (what a failover manager does), the other is re-pointed at it. Recovery: from the kill until every
// service answers a database-backed read and filing takes a write again. Then the old primary rejoins
// as a standby through pg_rewind. sync: synchronous_standby_names = 'ANY 1 (...)' with
// synchronous_commit = on, so no acknowledged write may be lost; without it (the async variant) the
// figures show what asynchronous replication can lose, and never fail the run.
func drillPGFailover(o options, sync bool) (result, error) {
	r := result{name: "pg-failover", recoveryLimit: 10}
	syncNames := "synchronous_standby_names = 'ANY 1 (s0, s1, s2)'"
	if !sync {
		r = result{name: "pg-failover-async", informational: true}
		syncNames = "synchronous_standby_names = ''"
	}
	// fsync off: only processes die in the drill, the machine's page cache survives them.
	conf := []string{syncNames, "synchronous_commit = on", "fsync = off", "max_connections = 100"}
	servers, err := startReplicated(conf)
	for _, s := range servers {
		defer s.Remove()
	}
	if err != nil {
		return r, err
	}
	multi := func(db string) string {
		hosts := make([]string, len(servers))
		for i, s := range servers {
			hosts[i] = "127.0.0.1:" + strconv.Itoa(s.Port)
		}
		return fmt.Sprintf("postgres://postgres@%s/%s?sslmode=disable&target_session_attrs=read-write", strings.Join(hosts, ","), db)
	}
	e, err := startEnvOn(o, servers[0].URL("postgres"), multi, nil)
	if err != nil {
		return r, err
	}
	e.adminURL = multi("postgres") // the database is dropped on whichever server is the primary then
	defer e.close()
	d := e.driver(true, true)
	var recovery, promoted time.Duration
	var newPrimary *pgcluster.Server
	v, conv, err := streamDuring(e, d, o.clients, 5*time.Second, func() error {
		time.Sleep(3 * time.Second)
		orders := d.orderList()
		if len(orders) == 0 {
			return fmt.Errorf("no order before the failover")
		}
		d.setPhase("failover")
		logf("SIGKILL of the primary %s and all its processes", servers[0].Name)
		t0 := time.Now()
		if err := servers[0].Kill(); err != nil {
			return err
		}
		time.Sleep(time.Second) // a failover manager's detection: a second of missed heartbeats
		var err error
		if newPrimary, err = promoteMostAdvanced(servers[1:]); err != nil {
			return err
		}
		promoted = time.Since(t0)
		logf("promoted %s %s after the kill", newPrimary.Name, promoted.Round(time.Millisecond))
		for {
			err := probeAll(e, orders[0].id)
			if err == nil {
				err = probeWrite(e)
			}
			if err == nil {
				recovery = time.Since(t0)
				break
			}
			if time.Since(t0) > 60*time.Second {
				return fmt.Errorf("the suite did not recover within 60 s of the kill: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		logf("all four services answer again %s after the kill", recovery.Round(time.Millisecond))
		d.setPhase("after")
		return nil
	})
	if err != nil {
		return r, err
	}
	report(r.name, d, v)
	r.orders, r.lost, r.dup, r.ackedLost = len(d.orderList()), v.lost, v.dup, v.ackedLost
	r.failedRPCs = d.failed("")
	r.recovery = recovery.Seconds()

	// The old primary comes back as a standby of the new one, and the drill ends with three servers.
	t0 := time.Now()
	rejoined := 0
	if err := servers[0].Rewind(newPrimary); err != nil {
		logf("pg_rewind: %v", err)
	} else if err := servers[0].Start(); err != nil {
		logf("start the rewound %s: %v", servers[0].Name, err)
	} else if err := waitStreaming(newPrimary, 2, 30*time.Second); err != nil {
		logf("after the rewind: %v", err)
	} else {
		rejoined = 1
	}
	if rejoined == 0 {
		logf("%s's log:\n%s", servers[0].Name, tailStr(servers[0].Log(), 2000))
	}
	r.extra = fmt.Sprintf("promote_s=%.2f converge_s=%.2f unavailable=%d (retried) rejoined=%d rewind_s=%.2f",
		promoted.Seconds(), conv.Seconds(), d.failed("failover"), rejoined, time.Since(t0).Seconds())
	if !sync {
		r.extra += " (asynchronous replication: reported, not failing)"
	} else if rejoined == 0 {
		r.lost++ // the drill must end clean
	}
	return r, nil
}

// startReplicated starts s0 (the primary) and two standbys s1 and s2 streaming from it, with conf on
// each (a promoted standby keeps the same settings), and waits until both stream.
func startReplicated(conf []string) ([]*pgcluster.Server, error) {
	primary, err := pgcluster.Init("s0", conf...)
	if err != nil {
		return nil, err
	}
	servers := []*pgcluster.Server{primary}
	if err := primary.Start(); err != nil {
		return servers, err
	}
	for _, name := range []string{"s1", "s2"} {
		s, err := pgcluster.Standby(primary, name, conf...)
		if err != nil {
			return servers, err
		}
		servers = append(servers, s)
		if err := s.Start(); err != nil {
			return servers, err
		}
	}
	logf("PostgreSQL s0 (primary, port %d), s1 (%d) and s2 (%d) standbys", primary.Port, servers[1].Port, servers[2].Port)
	return servers, waitStreaming(primary, 2, 30*time.Second)
}

// waitStreaming waits until n standbys stream from primary.
func waitStreaming(primary *pgcluster.Server, n int, limit time.Duration) error {
	end := time.Now().Add(limit)
	for {
		var got int
		var names string
		err := withConn(primary, func(c *pgx.Conn) error {
			return c.QueryRow(context.Background(), `SELECT count(*), coalesce(string_agg(application_name || ':' || state, ' '), '')
				FROM pg_stat_replication WHERE state = 'streaming'`).Scan(&got, &names)
		})
		if err == nil && got >= n {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("%d of %d standbys stream from %s after %s (streaming: %q, %v)", got, n, primary.Name, limit, names, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// promoteMostAdvanced promotes the standby that received the most WAL (it holds every commit the
// primary acknowledged under ANY 1), and points the others at it.
func promoteMostAdvanced(standbys []*pgcluster.Server) (*pgcluster.Server, error) {
	var best *pgcluster.Server
	var bestLSN uint64
	for _, s := range standbys {
		var lsn string
		err := withConn(s, func(c *pgx.Conn) error {
			return c.QueryRow(context.Background(), `SELECT coalesce(pg_last_wal_receive_lsn()::text, '0/0')`).Scan(&lsn)
		})
		if err != nil {
			return nil, fmt.Errorf("received position of %s: %w", s.Name, err)
		}
		n, err := parseLSN(lsn)
		if err != nil {
			return nil, err
		}
		logf("%s received up to %s", s.Name, lsn)
		if best == nil || n > bestLSN {
			best, bestLSN = s, n
		}
	}
	if err := best.Promote(); err != nil {
		return nil, err
	}
	for _, s := range standbys {
		if s == best {
			continue
		}
		err := withConn(s, func(c *pgx.Conn) error {
			if _, err := c.Exec(context.Background(), "ALTER SYSTEM SET primary_conninfo = '"+best.ConnInfo()+"'"); err != nil {
				return err
			}
			_, err := c.Exec(context.Background(), "SELECT pg_reload_conf()")
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("re-point %s at %s: %w", s.Name, best.Name, err)
		}
	}
	return best, nil
}

// parseLSN reads PostgreSQL's "hi/lo" (hexadecimal) WAL position.
func parseLSN(s string) (uint64, error) {
	hi, lo, ok := strings.Cut(s, "/")
	h, err1 := strconv.ParseUint(hi, 16, 32)
	l, err2 := strconv.ParseUint(lo, 16, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, fmt.Errorf("not a WAL position: %q", s)
	}
	return h<<32 | l, nil
}

func withConn(s *pgcluster.Server, fn func(*pgx.Conn) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.URL("postgres"))
	if err != nil {
		return err
	}
	defer c.Close(context.Background())
	return fn(c)
}

// probeWrite creates one draft order (not the driver's: nothing checks it) to see that filing writes.
func probeWrite(e *env) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	n := seq.Add(1)
	p := suite.Person("王五", fmt.Sprintf("+86136%08d", n), int(n))
	_, err := filingv1.NewFilingServiceClient(e.filing.conn).CreateOrder(ctx, &filingv1.CreateOrderRequest{
		RequestId: fmt.Sprintf("chaos-probe-%d-%d", runID, n),
		Spec: &filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: "探针",
			SubjectType: filingv1.SubjectType_SUBJECT_TYPE_ORGANIZATION, Principal: p,
			Websites: []*filingv1.Website{{Domain: fmt.Sprintf("probe%d-%d.cn", runID, n), Person: p}}},
	})
	if err != nil {
		return fmt.Errorf("filing CreateOrder: %w", err)
	}
	return nil
}
