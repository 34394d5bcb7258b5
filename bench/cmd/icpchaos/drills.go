package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

// streamDuring drives orders while fault runs, and tail longer; then waits for convergence.
func streamDuring(e *env, d *driver, clients int, tail time.Duration, fault func() error) (verdict, time.Duration, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { d.stream(context.Background(), clients, stop) })
	time.Sleep(2 * time.Second) // steady state first
	ferr := fault()
	time.Sleep(tail)
	close(stop)
	d.giveUp = time.Now().Add(30 * time.Second)
	wg.Wait()
	logf("stream stopped: %d orders; converging", len(d.orderList()))
	t0 := time.Now()
	v, err := e.converge(d, false, 60*time.Second)
	if ferr != nil {
		return v, 0, ferr
	}
	return v, time.Since(t0), err
}

func report(name string, d *driver, v verdict) {
	for _, n := range v.notes {
		logf("%s: %s", name, n)
	}
	if s := d.failSummary(); s != "" {
		logf("%s: failed RPC attempts (phase/method/code):\n%s", name, s)
	}
}

// drillKill: SIGKILL each service in turn mid-stream, restart it after 1 s.
func drillKill(o options) (result, error) {
	r := result{name: "sigkill"}
	e, err := startEnv(o, nil)
	if err != nil {
		return r, err
	}
	defer e.close()
	d := e.driver(true, true)
	var worst time.Duration
	v, conv, err := streamDuring(e, d, o.clients, 3*time.Second, func() error {
		for _, svc := range suite.Services {
			time.Sleep(3 * time.Second)
			logf("SIGKILL %s (pid %d)", svc, e.s.Procs[svc].PID())
			t0 := time.Now()
			e.s.Procs[svc].Kill()
			time.Sleep(time.Second)
			if err := e.s.Restart(svc); err != nil {
				return err
			}
			worst = max(worst, time.Since(t0))
			logf("%s back after %s", svc, time.Since(t0).Round(time.Millisecond))
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	report(r.name, d, v)
	r.orders, r.lost, r.dup = len(d.orderList()), v.lost, v.dup
	r.failedRPCs = d.failed("")
	r.recovery = worst.Seconds()
	r.extra = fmt.Sprintf("(failed_rpcs retried, expected) converge_s=%.2f gateway_reposts=%d", conv.Seconds(), o.sink.Posts()-o.sink.Distinct())
	return r, nil
}

// probeAll calls a database-backed read on each of the four services; nil when all answered.
func probeAll(e *env, orderID string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := filingv1.NewFilingServiceClient(e.filing.conn).GetOrder(ctx, &filingv1.GetOrderRequest{OrderId: orderID}); err != nil {
		return fmt.Errorf("filing GetOrder: %w", err)
	}
	if _, err := verificationv1.NewVerificationServiceClient(e.verif.conn).GetVerificationStatus(ctx, &verificationv1.GetVerificationStatusRequest{OrderId: orderID}); err != nil {
		return fmt.Errorf("verification GetVerificationStatus: %w", err)
	}
	for _, svc := range []string{"sms-dispatch", "deadline"} {
		conn, err := suite.Dial(e.s.Addrs[svc])
		if err != nil {
			return err
		}
		if svc == "sms-dispatch" {
			_, err = smsv1.NewSmsDispatchServiceClient(conn).ListMessages(ctx, &smsv1.ListMessagesRequest{PageSize: 1, OrderId: orderID})
		} else {
			_, err = deadlinev1.NewDeadlineServiceClient(conn).GetDeadline(ctx, &deadlinev1.GetDeadlineRequest{OrderId: orderID})
		}
		conn.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", svc, err)
		}
	}
	return nil
}

// drillPostgres: restart PostgreSQL under load; recovery is from the restart command until every
// service answers a database-backed read again.
func drillPostgres(o options) (result, error) {
	r := result{name: "postgres-restart", recoveryLimit: 5}
	defer pgUp(o.adminURL)
	e, err := startEnv(o, nil)
	if err != nil {
		return r, err
	}
	defer e.close()
	d := e.driver(true, true)
	var recovery, pgDown time.Duration
	var restartAt time.Time
	var probeFails atomic.Int64
	var lastProbeErr atomic.Value
	v, conv, err := streamDuring(e, d, o.clients, 4*time.Second, func() error {
		time.Sleep(2 * time.Second)
		orders := d.orderList()
		if len(orders) == 0 {
			return fmt.Errorf("no order before the restart")
		}
		probeID := orders[0].id
		d.setPhase("restart")
		logf("restarting PostgreSQL")
		t0 := time.Now()
		restartAt = t0
		if err := pgRestart("restart"); err != nil {
			return err
		}
		pgDown = time.Since(t0)
		logf("pg_ctlcluster restart returned after %s", pgDown.Round(time.Millisecond))
		for {
			err := probeAll(e, probeID)
			if err == nil {
				recovery = time.Since(t0)
				break
			}
			probeFails.Add(1)
			lastProbeErr.Store(err.Error())
			if time.Since(t0) > 60*time.Second {
				return fmt.Errorf("the suite did not recover within 60 s of the restart: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		logf("all four services answer again %s after the restart began (%d failed probes, last: %v)",
			recovery.Round(time.Millisecond), probeFails.Load(), lastProbeErr.Load())
		d.setPhase("after")
		return nil
	})
	if err != nil {
		return r, err
	}
	report(r.name, d, v)
	r.orders, r.lost, r.dup = len(d.orderList()), v.lost, v.dup
	r.failedRPCs = d.failed("")
	r.recovery = recovery.Seconds()
	r.extra = fmt.Sprintf("unavailable=%d internal=%d (retried) failed_probes=%d pg_restart_s=%.2f converge_s=%.2f late_code_orders=%d",
		d.failed("", codes.Unavailable), d.failed("", codes.Internal), probeFails.Load(), pgDown.Seconds(), conv.Seconds(), d.lateCodes)
	if d.lateCodes > 0 {
		r.extra += fmt.Sprintf(" last_late_code_s_after_restart=%.1f", d.lateAt.Sub(restartAt).Seconds())
	}
	for _, svc := range suite.Services {
		out := e.s.Procs[svc].Output()
		for _, w := range []string{"could not reschedule", "delivered but not deleted", "outbox claim failed"} {
			if n := strings.Count(out, w); n > 0 {
				logf("%s log: %q x%d", svc, w, n)
			}
		}
	}
	if recovery > 5*time.Second {
		r.extra += " RECOVERY_OVER_5S"
	}
	return r, nil
}

// drillDeadline: two deadline replicas; a burst of orders with a 3 s window expiring together.
func drillDeadline(o options) (result, error) {
	r := result{name: "deadline-replicas"}
	const window = 3 * time.Second
	e, err := startEnv(o, map[string][]string{"filing": {"--verification-window=" + window.String()}})
	if err != nil {
		return r, err
	}
	defer e.close()
	addr2, err := suite.FreeAddr()
	if err != nil {
		return r, err
	}
	p2, err := e.s.StartProc("deadline#2", addr2, e.s.Args("deadline#2"))
	if err != nil {
		return r, err
	}
	if err := p2.WaitHealthy(60 * time.Second); err != nil {
		return r, err
	}
	p1 := e.s.Procs["deadline"]
	c1a, _ := suite.CPUSeconds(p1.PID())
	c2a, _ := suite.CPUSeconds(p2.PID())
	d := e.driver(true, false)
	// create the burst's drafts first, then submit them all at once so their windows close together
	var next atomic.Int64
	var made []*order
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for next.Add(1) <= int64(o.burst) {
				if ord, err := d.create(context.Background()); err == nil {
					mu.Lock()
					made = append(made, ord)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	logf("submitting %d orders (window %s) with deadline and deadline#2 running", len(made), window)
	t0 := time.Now()
	next.Store(0)
	for range 8 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(made)) {
					return
				}
				if err := d.submit(context.Background(), made[i]); err != nil {
					made[i].abandoned = true
				}
			}
		})
	}
	wg.Wait()
	logf("submitted in %s; waiting for the returns", time.Since(t0).Round(time.Millisecond))
	v, err := e.converge(d, true, 90*time.Second)
	if err != nil {
		return r, err
	}
	var lag float64
	_ = e.db.QueryRow(context.Background(), `SELECT coalesce(extract(epoch FROM max(h.at - o.deadline_at)), 0) FROM filing.orders o
		JOIN filing.order_history h ON h.order_id = o.order_id AND h.to_state = 'RETURNED'`).Scan(&lag)
	c1b, _ := suite.CPUSeconds(p1.PID())
	c2b, _ := suite.CPUSeconds(p2.PID())
	report(r.name, d, v)
	r.orders, r.lost, r.dup = len(d.orderList()), v.lost, v.dup
	r.failedRPCs = d.failed("")
	r.recovery = lag
	r.extra = fmt.Sprintf("(recovery_s = latest return after its deadline) cpu_s_deadline=%.2f cpu_s_deadline2=%.2f", c1b-c1a, c2b-c2a)
	return r, nil
}

// drillSigterm: SIGTERM each service in turn under load, with no client retry. Public services
// (filing, verification) first as a single replica (informational: what a lone replica's restart
// costs its clients), then with a second replica behind the client's round_robin list, which must
// cost nothing. Internal services (sms-dispatch, deadline) are called only through outboxes.
func drillSigterm(o options) (result, error) {
	r := result{name: "sigterm", failedRPCsMustBeZero: true}
	e, err := startEnv(o, nil)
	if err != nil {
		return r, err
	}
	defer e.close()
	d := e.driver(false, true)
	var worst time.Duration
	restart := func(key string) error {
		t0 := time.Now()
		logf("SIGTERM %s (pid %d)", key, e.s.Procs[key].PID())
		if err := e.s.Restart(key); err != nil {
			return err
		}
		worst = max(worst, time.Since(t0))
		logf("%s back after %s", key, time.Since(t0).Round(time.Millisecond))
		return nil
	}
	v, conv, err := streamDuring(e, d, o.clients, 3*time.Second, func() error {
		for _, svc := range []string{"filing", "verification"} {
			d.setPhase("single-" + svc)
			if err := restart(svc); err != nil {
				return err
			}
			time.Sleep(2 * time.Second)
		}
		for _, svc := range suite.Services {
			bal := map[string]*balanced{"filing": e.filing, "verification": e.verif}[svc]
			d.setPhase("main")
			if bal == nil {
				if err := restart(svc); err != nil {
					return err
				}
				time.Sleep(2 * time.Second)
				continue
			}
			key := svc + "#2"
			addr2, err := suite.FreeAddr()
			if err != nil {
				return err
			}
			p2, err := e.s.StartProc(key, addr2, e.s.Args(key))
			if err != nil {
				return err
			}
			if err := p2.WaitHealthy(60 * time.Second); err != nil {
				return err
			}
			bal.set(e.s.Addrs[svc], addr2)
			time.Sleep(2 * time.Second)
			if err := restart(svc); err != nil {
				return err
			}
			time.Sleep(2 * time.Second)
			// and the second replica goes away gracefully too, the list shrinking after it exited
			logf("SIGTERM %s (pid %d)", key, p2.PID())
			p2.Stop(20 * time.Second)
			bal.set(e.s.Addrs[svc])
			delete(e.s.Procs, key)
			time.Sleep(2 * time.Second)
		}
		return nil
	})
	if err != nil {
		return r, err
	}
	report(r.name, d, v)
	abandoned := 0
	for _, ord := range d.orderList() {
		if ord.abandoned {
			abandoned++
		}
	}
	r.orders, r.lost, r.dup = len(d.orderList()), v.lost, v.dup
	r.failedRPCs = d.failed("main")
	r.recovery = worst.Seconds()
	single := []string{}
	for _, svc := range []string{"filing", "verification"} {
		single = append(single, fmt.Sprintf("single_replica_failed_rpcs_%s=%d", svc, d.failed("single-"+svc)))
	}
	r.extra = fmt.Sprintf("(two replicas for filing/verification) %s abandoned_orders=%d converge_s=%.2f",
		strings.Join(single, " "), abandoned, conv.Seconds())
	return r, nil
}
