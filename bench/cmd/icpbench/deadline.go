package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/pg"
)

// claimSQL is the deadline sweeper's claim statement: the Claim block of the service's own
// queries.sql, parsed as the service parses it (pg.ParseQueries), so the benchmark times exactly
// what the service runs.
var claimSQL string

func loadClaimSQL(root string) error {
	file := filepath.Join(root, "services", "deadline", "internal", "store", "queries.sql")
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	stmts, err := pg.ParseQueries(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if claimSQL = stmts["Claim"]; claimSQL == "" {
		return fmt.Errorf("%s: no Claim block", file)
	}
	return nil
}

// deadlineRun makes the submitted orders' timers due at one instant T among o.deadlineTotal pending
// ones and measures the sweeper; it returns T to the last order RETURNED (deadline_due<N>k_seconds).
func deadlineRun(ctx context.Context, o options, fig *figures, db *pgxpool.Pool, stmts *statements, orders []string,
	client func(int64) filingv1.FilingServiceClient) (float64, error) {
	due := len(orders)
	// Wait until every submitted order's timer exists (the filing outbox schedules them).
	end := time.Now().Add(2 * time.Minute)
	for {
		var k int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM deadline.deadlines WHERE order_id = ANY($1) AND state = 'PENDING'`, orders).Scan(&k); err != nil {
			return 0, err
		}
		if k >= due {
			break
		}
		if time.Now().After(end) {
			return 0, fmt.Errorf("only %d of %d deadlines scheduled", k, due)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The rest of the total: far-future timers (the seeded population's timers count too).
	var pending int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM deadline.deadlines WHERE state = 'PENDING'`).Scan(&pending); err != nil {
		return 0, err
	}
	far := o.deadlineTotal - pending
	logf("COPY %d far-future pending timers into deadline.deadlines", far)
	now := time.Now().UTC()
	start := time.Now()
	conn, err := db.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	i := 0
	n, err := conn.Conn().CopyFrom(ctx, pgx.Identifier{"deadline", "deadlines"},
		[]string{"order_id", "submission", "due_at", "state", "next_attempt_at", "created_at"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i >= far {
				return nil, nil
			}
			at := now.Add(48*time.Hour + time.Duration(i%(30*24*3600))*time.Second)
			row := []any{fmt.Sprintf("ord_benchfar_%07d", i), int32(1), at, "PENDING", at, now}
			i++
			return row, nil
		}))
	conn.Release()
	if err != nil {
		return 0, fmt.Errorf("copy: %w", err)
	}
	if err := analyze(ctx, db); err != nil {
		return 0, err
	}
	logf("copied %d rows in %s", n, time.Since(start).Round(time.Millisecond))
	var total int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM deadline.deadlines WHERE state = 'PENDING'`).Scan(&total); err != nil {
		return 0, err
	}
	fig.add("deadline_pending_rows", float64(total), "rows")

	// T: one instant for all due orders, far enough ahead for the moves below.
	T := time.Now().Add(20 * time.Second).UTC().Truncate(time.Millisecond)
	if err := moveDeadlines(ctx, db, orders, T, true); err != nil {
		return 0, err
	}

	// The claim on 1M rows: EXPLAIN ANALYZE (rolled back, at T so the due rows qualify) and the
	// prepared statement's own timing.
	claimTimes, plan, err := claimPlan(ctx, db, T)
	if err != nil {
		return 0, err
	}
	fmt.Fprintln(os.Stderr, plan)
	writePlan(o, plan)
	fig.add("deadline_claim_ms", median(claimTimes), "ms")
	usesIndex := 0.0
	if strings.Contains(plan, "deadlines_pending_next") {
		usesIndex = 1
	}
	fig.add("deadline_claim_uses_partial_index", usesIndex, "bool")
	if time.Now().After(T.Add(-2 * time.Second)) {
		return 0, fmt.Errorf("set-up took past T; raise the margin")
	}
	logf("waiting for T = %s; %d orders fall due then", T.Format(time.RFC3339Nano), due)

	// From T until filing has every due order RETURNED.
	for time.Now().Before(T) {
		time.Sleep(10 * time.Millisecond)
	}
	c0, _ := dbStats(ctx, statsDB, statsName)
	cpu0 := cpuOf()
	profile(o, "deadline", 10*time.Second)
	stmts.begin(ctx)
	// Watch the RETURNED transitions as they are written: each poll reads only the history rows added
	// since the last one (order_history.id grows), so watching costs the database next to nothing.
	// A row that commits after a higher id was read is missed by that cursor, so the exact count
	// (by state: ~20 ms of database time here) confirms the end, and runs every 2 s in any case.
	var afterID int64
	if err := db.QueryRow(ctx, `SELECT coalesce(max(id), 0) FROM filing.order_history`).Scan(&afterID); err != nil {
		return 0, err
	}
	seen, lastExact := 0, time.Now()
	for {
		var maxID int64
		var k int
		if err := db.QueryRow(ctx, `SELECT coalesce(max(id), $1), count(*) FILTER (WHERE to_state = 'RETURNED')
			FROM filing.order_history WHERE id > $1`, afterID).Scan(&maxID, &k); err != nil {
			return 0, err
		}
		afterID, seen = maxID, seen+k
		if seen >= due || time.Since(lastExact) > 2*time.Second {
			lastExact = time.Now()
			var exact int
			if err := db.QueryRow(ctx, `SELECT count(*) FROM filing.orders WHERE state = 'RETURNED'`).Scan(&exact); err != nil {
				return 0, err
			}
			if exact >= due {
				break
			}
		}
		if time.Now().After(T.Add(5 * time.Minute)) {
			return 0, fmt.Errorf("only %d of %d returned 5 minutes after T", seen, due)
		}
		time.Sleep(100 * time.Millisecond)
	}
	observed := time.Since(T)
	stmts.end(ctx, "deadline")
	cpuCores(fig, "deadline", cpu0, cpuOf(), observed)
	c1, _ := dbStats(ctx, statsDB, statsName)
	fig.add("deadline_db_commits_per_order", float64(c1.commits-c0.commits)/float64(due), "tx/order")
	var last time.Time
	var early, reasons int
	if err := db.QueryRow(ctx, `SELECT max(at), count(*) FILTER (WHERE at < $2) FROM filing.order_history
		WHERE order_id = ANY($1) AND to_state = 'RETURNED'`, orders, T).Scan(&last, &early); err != nil {
		return 0, err
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM filing.orders WHERE order_id = ANY($1) AND return_reason <> 0`, orders).Scan(&reasons); err != nil {
		return 0, err
	}
	// The public API must agree: page through ListOrders(RETURNED).
	listed := 0
	want := map[string]bool{}
	for _, id := range orders {
		want[id] = true
	}
	token := ""
	for {
		resp, err := client(0).ListOrders(ctx, &filingv1.ListOrdersRequest{PageSize: 200, PageToken: token,
			State: filingv1.OrderState_ORDER_STATE_RETURNED})
		if err != nil {
			return 0, err
		}
		for _, ord := range resp.Orders {
			if want[ord.OrderId] && ord.ReturnReason == filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT {
				listed++
			}
		}
		if token = resp.NextPageToken; token == "" {
			break
		}
	}
	if listed != due {
		return 0, fmt.Errorf("ListOrders shows %d of %d due orders RETURNED for VERIFICATION_TIMEOUT", listed, due)
	}
	dueSeconds := last.Sub(T).Seconds()
	fig.add(fmt.Sprintf("deadline_due%dk_seconds", due/1000), dueSeconds, "s")
	fig.add("deadline_due_observed_seconds", observed.Seconds(), "s")
	var firedLast time.Time
	if err := db.QueryRow(ctx, `SELECT max(fired_at) FROM deadline.deadlines WHERE order_id = ANY($1)`, orders).Scan(&firedLast); err == nil {
		// when the sweeper had closed the last session (the rest is the outbox delivering ReturnOrder)
		fig.add("deadline_last_fired_seconds", firedLast.Sub(T).Seconds(), "s")
	}
	fig.add("deadline_early_returns", float64(early), "count")
	var extra int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM deadline.deadlines WHERE state <> 'PENDING' AND order_id LIKE 'ord_benchfar_%'`).Scan(&extra); err != nil {
		return 0, err
	}
	fig.add("deadline_far_fired", float64(extra), "count")
	return dueSeconds, nil
}

func claimPlan(ctx context.Context, db *pgxpool.Pool, T time.Time) ([]float64, string, error) {
	conn, err := db.Acquire(ctx)
	if err != nil {
		return nil, "", err
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SET search_path = deadline`); err != nil {
		return nil, "", err
	}
	defer conn.Exec(context.Background(), `RESET search_path`) //nolint:errcheck
	var times []float64
	for range 11 {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return nil, "", err
		}
		t0 := time.Now()
		rows, err := tx.Query(ctx, claimSQL, T, 100, T.Add(30*time.Second)) // prepared, as the service runs it
		if err != nil {
			_ = tx.Rollback(ctx)
			return nil, "", err
		}
		k := 0
		for rows.Next() {
			k++
		}
		rows.Close()
		times = append(times, ms(time.Since(t0)))
		_ = tx.Rollback(ctx)
		if rows.Err() != nil {
			return nil, "", rows.Err()
		}
		if k != 100 {
			return nil, "", fmt.Errorf("claim at T returned %d rows, want 100", k)
		}
	}
	lit := strings.NewReplacer("$1", "'"+T.Format(time.RFC3339Nano)+"'::timestamptz", "$2", "100",
		"$3", "'"+T.Add(30*time.Second).Format(time.RFC3339Nano)+"'::timestamptz").Replace(claimSQL)
	tx, err := conn.Begin(ctx)
	if err != nil {
		return nil, "", err
	}
	defer tx.Rollback(ctx) //nolint:errcheck
	rows, err := tx.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) "+lit, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return nil, "", err
	}
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, "", err
		}
		b.WriteString(line + "\n")
	}
	return times, b.String(), rows.Err()
}

func writePlan(o options, plan string) {
	p := filepath.Join(o.root, "bench", "deadline_claim_plan.txt")
	f, err := os.Create(p)
	if err != nil {
		return
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "-- EXPLAIN (ANALYZE, BUFFERS) of the sweeper's claim (services/deadline/internal/store/store.go) on the icpbench 1M-row table\n%s", plan)
	_ = w.Flush()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
