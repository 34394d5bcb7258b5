package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

// The steady-state Verify phase's population.
var steadyPop = popTag{name: "benchsteady", phonePrefix: "+86134", figures: "seed_steady_"}

// steadyTPS is the mean pgbench tps of the rounds alternating with the steady-state run (or the run's
// pgbench_tps when pgbench did not alternate with it).
var steadyTPS float64

// pairedOrder is the order in which the correct checks of a steady-state run draw the verifiers of
// sessions sessions (verifiers 2i and 2i+1 are session i's): the sessions shuffled, and in each block
// of window sessions their first verifiers, then their second ones, so that each session's second
// check comes window checks after its first. With window 1 the two are back to back. Past the first
// window, about one pass in two completes its session, as in a system that has run for a while.
func pairedOrder(sessions, window int, rng *rand.Rand) []int32 {
	window = max(window, 1)
	perm := make([]int32, sessions)
	for i := range perm {
		perm[i] = int32(i)
	}
	rng.Shuffle(sessions, func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	order := make([]int32, 0, 2*sessions)
	for b := 0; b < sessions; b += window {
		block := perm[b:min(b+window, sessions)]
		for _, s := range block {
			order = append(order, 2*s)
		}
		for _, s := range block {
			order = append(order, 2*s+1)
		}
	}
	return order
}

// pairUp makes p draw its verifiers in pairedOrder: only the order of the checks changes.
func (p *population) pairUp(window int) {
	p.order = pairedOrder(len(p.phones)/2, window, rand.New(rand.NewPCG(3, 4)))
}

// roundsResult is a Verify load run in rounds alternating with pgbench.
type roundsResult struct {
	vr      loadResult
	commits int64              // the suite database's commits during the Verify rounds
	cpu     map[string]float64 // CPU seconds used during the Verify rounds only
	tps     float64            // the mean of pgbench's rounds (0 without pgbench)
	note    string             // each round's figures
}

// alternate runs run (one Verify round of the given length) in o.rounds rounds, each after a pgbench
// round as long (pb, when not nil): a shared machine's drift weighs on both alike. profileAs names
// the CPU profile taken in the last round.
func alternate(ctx context.Context, o options, s *suite.Suite, pb *pgbenchDB, db *pgxpool.Pool, dbName, profileAs string,
	run func(d time.Duration) loadResult) (roundsResult, error) {
	rounds := o.rounds
	if pb == nil {
		rounds = 1
	}
	per := o.duration / time.Duration(rounds)
	out := roundsResult{cpu: map[string]float64{}}
	var tpsList, rpsList, ratios []string
	var tpsSum, tps float64
	for r := range rounds {
		if pb != nil {
			var err error
			if tps, err = pb.run(ctx, per); err != nil {
				return out, fmt.Errorf("pgbench: %w", err)
			}
			tpsSum += tps
			tpsList = append(tpsList, strconv.FormatFloat(tps, 'f', 0, 64))
		}
		statsBefore, _ := dbStats(ctx, db, dbName)
		cpu0 := cpuSnapshot(s)
		if r == rounds-1 {
			profile(o, profileAs, min(per-3*time.Second, 20*time.Second))
		}
		res := run(per)
		for k, v := range cpuSnapshot(s) {
			out.cpu[k] += v - cpu0[k]
		}
		statsAfter, _ := dbStats(ctx, db, dbName)
		out.commits += statsAfter.commits - statsBefore.commits
		out.vr = out.vr.merge(res)
		rpsList = append(rpsList, strconv.FormatFloat(res.rps(), 'f', 0, 64))
		if pb != nil {
			ratios = append(ratios, strconv.FormatFloat(res.rps()/tps, 'f', 3, 64))
		}
	}
	if pb != nil {
		// Each round's pgbench ran as long as its Verify run: the mean is the rate over all rounds.
		out.tps = tpsSum / float64(rounds)
		out.note = fmt.Sprintf("rounds of %s: pgbench_tps %s; %s_rps %s; %s_vs_pgbench %s", per, strings.Join(tpsList, " "),
			profileAs, strings.Join(rpsList, " "), profileAs, strings.Join(ratios, " "))
	}
	return out, nil
}

// steadyPhase runs Verify at saturation on a population drawn in pairs (pairUp), in rounds alternating
// with pgbench, and reports what the completed sessions leave to the outbox relays.
func steadyPhase(ctx context.Context, o options, fig *figures, s *suite.Suite, pop *population, pb *pgbenchDB, db *pgxpool.Pool,
	stmts *statements, pick func(string, int64) *grpc.ClientConn) (float64, error) {
	verify := grpcVerify(func(i int64) verificationv1.VerificationServiceClient {
		return verificationv1.NewVerificationServiceClient(pick("verification", i))
	})
	logf("Verify in steady state: %d clients for %s, an order's two verifiers %d checks apart (%d%% wrong)",
		o.clients, o.duration, o.steadyWindow, o.wrongPct)
	stmts.begin(ctx)
	res, err := alternate(ctx, o, s, pb, db, statsName, "verify_steady", func(d time.Duration) loadResult {
		return pop.run(ctx, o.clients, d, verify)
	})
	if err != nil {
		return 0, err
	}
	stmts.end(ctx, "verify_steady")
	vr := res.vr
	backlog, err := outboxBacklog(ctx, db)
	if err != nil {
		return 0, err
	}
	var passed int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM verification.sessions WHERE order_id LIKE $1 AND state = 'PASSED'`,
		"ord_"+steadyPop.name+"_%").Scan(&passed); err != nil {
		return 0, err
	}
	steadyTPS = res.tps
	if res.note != "" {
		fig.note(res.note)
	} else {
		steadyTPS = pgbenchTPS
	}
	fig.add("verify_steady_rps", vr.rps(), "rps")
	fig.add("verify_steady_p50_ms", ms(vr.pct(50)), "ms")
	fig.add("verify_steady_p99_ms", ms(vr.pct(99)), "ms")
	fig.add("verify_steady_unexpected_errors", float64(vr.errs), "count")
	fig.add("verify_steady_passed", float64(pop.passed.Load()), "count")
	fig.add("verify_steady_sessions_passed", float64(passed), "count")
	if n := pop.passed.Load(); n > 0 {
		fig.add("verify_steady_sessions_per_pass", float64(passed)/float64(n), "ratio")
	}
	fig.add("verify_steady_db_commits_per_op", float64(res.commits)/float64(max(vr.ops, 1)), "tx/op")
	total := int64(0)
	for _, t := range backlog.targets {
		total += backlog.live[t]
		fig.add("verify_steady_outbox_backlog_"+targetFigure(t), float64(backlog.live[t]), "rows")
	}
	fig.add("verify_steady_outbox_backlog_end", float64(total), "rows")
	fig.add("verify_steady_outbox_dead", float64(backlog.dead), "rows")
	cpuCores(fig, "verify_steady", map[string]float64{}, res.cpu, vr.elapsed)
	// How long the relays take to deliver what the run left them: a backlog that drains in seconds is
	// a relay keeping up; one that does not is throughput the run borrowed.
	start := time.Now()
	for total > 0 && time.Since(start) < time.Minute {
		time.Sleep(200 * time.Millisecond)
		if err := db.QueryRow(ctx, `SELECT count(*) FROM verification.outbox WHERE dead_at IS NULL`).Scan(&total); err != nil {
			return 0, err
		}
	}
	if total == 0 {
		fig.add("verify_steady_outbox_drain_seconds", time.Since(start).Seconds(), "s")
	} else {
		logf("verify_steady: %d outbox rows still pending a minute after the run", total)
	}
	return vr.rps(), nil
}

// backlog is what verification's outbox holds: live (pending delivery) rows per target, and dead ones.
type backlog struct {
	targets []string // the outbox's targets, in a fixed order
	live    map[string]int64
	dead    int64
}

func outboxBacklog(ctx context.Context, db *pgxpool.Pool) (backlog, error) {
	// Every target verification writes appears, 0 when none is pending.
	b := backlog{targets: []string{"filing.MarkVerified", "deadline.CancelDeadline", "filing.ReturnOrder", "smsdispatch.SendMessage"},
		live: map[string]int64{}}
	rows, err := db.Query(ctx, `SELECT target, count(*) FILTER (WHERE dead_at IS NULL), count(*) FILTER (WHERE dead_at IS NOT NULL)
		FROM verification.outbox GROUP BY target ORDER BY target`)
	if err != nil {
		return b, fmt.Errorf("outbox backlog: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var live, dead int64
		if err := rows.Scan(&t, &live, &dead); err != nil {
			return b, err
		}
		if !slices.Contains(b.targets, t) {
			b.targets = append(b.targets, t)
		}
		b.live[t] = live
		b.dead += dead
	}
	return b, rows.Err()
}

// targetFigure makes an outbox target (filing.MarkVerified) part of a figure name (filing_markverified).
func targetFigure(t string) string {
	return strings.ToLower(strings.NewReplacer(".", "_", "-", "_").Replace(t))
}
