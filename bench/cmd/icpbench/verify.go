package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

// verifyPhases runs Verify with the default anti-timing floor and at saturation (with each service's
// peak RSS meanwhile); the saturation run alternates with pgbench (pb, when not nil) in o.rounds rounds.
func verifyPhases(ctx context.Context, o options, fig *figures, s *suite.Suite, pop *population, pb *pgbenchDB, db *pgxpool.Pool, dbName string,
	stmts *statements, pick func(string, int64) *grpc.ClientConn) (loadResult, error) {
	verifyClient := func(i int64) verificationv1.VerificationServiceClient {
		return verificationv1.NewVerificationServiceClient(pick("verification", i))
	}

	// 6a. Verify with the default anti-timing floor (150ms), to show its cost.
	logf("restarting verification with the default --min-response-time=150ms")
	if err := s.Restart("verification", "--min-response-time=150ms"); err != nil {
		return loadResult{}, err
	}
	r150 := pop.run(ctx, o.clients, o.minRespRun, grpcVerify(verifyClient))
	fig.add("verify_minresp150_rps", r150.rps(), "rps")
	fig.add("verify_minresp150_p50_ms", ms(r150.pct(50)), "ms")
	if err := s.Restart("verification", "--min-response-time=0"); err != nil {
		return loadResult{}, err
	}
	time.Sleep(time.Second)

	// 6b. Verify at saturation, with RSS sampled meanwhile, in rounds alternating with pgbench.
	logf("Verify at saturation: %d clients for %s in rounds alternating with pgbench (%d%% wrong)", o.clients, o.duration, o.wrongPct)
	peak := map[string]int64{}
	stopRSS := make(chan struct{})
	var rssWG sync.WaitGroup
	rssWG.Go(func() {
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopRSS:
				return
			case <-t.C:
				for _, name := range suite.Services {
					if kib, err := s.Procs[name].RSSKiB(); err == nil && kib > peak[name] {
						peak[name] = kib
					}
				}
			}
		}
	})
	stmts.begin(ctx) // pgbench's statements run in its own database: not counted
	res, err := alternate(ctx, o, s, pb, db, dbName, "verify", func(d time.Duration) loadResult {
		return pop.run(ctx, o.clients, d, grpcVerify(verifyClient))
	})
	if err != nil {
		return loadResult{}, err
	}
	vr, commits, cpu := res.vr, res.commits, res.cpu
	stmts.end(ctx, "verify")
	// What the passes owe filing and deadline and was not delivered yet: a relay that falls behind
	// makes the run look faster than the suite can keep up with.
	var backlog int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM verification.outbox WHERE dead_at IS NULL`).Scan(&backlog); err != nil {
		return loadResult{}, fmt.Errorf("outbox backlog: %w", err)
	}
	close(stopRSS)
	rssWG.Wait()
	if pb != nil {
		pgbenchTPS = res.tps
		fig.add("pgbench_tps", pgbenchTPS, "tps")
		fig.note(res.note)
	}
	fig.add("verify_rps", vr.rps(), "rps")
	fig.add("verify_p50_ms", ms(vr.pct(50)), "ms")
	fig.add("verify_p99_ms", ms(vr.pct(99)), "ms")
	fig.add("verify_unexpected_errors", float64(vr.errs), "count")
	fig.add("verify_passed", float64(pop.passed.Load()), "count")
	fig.add("verify_mismatched", float64(pop.mismatched.Load()), "count")
	fig.add("verify_db_commits_per_op", float64(commits)/float64(max(vr.ops, 1)), "tx/op")
	fig.add("verify_outbox_backlog_end", float64(backlog), "rows")
	cpuCores(fig, "verify", map[string]float64{}, cpu, vr.elapsed)
	for _, name := range suite.Services {
		fig.add("rss_mb_"+under(name)+"_verify_load", float64(peak[name])/1024, "MB")
	}

	return vr, nil
}

type population struct {
	phones []string // verifier i's phone
	tails  []string
	sink   *suite.Sink
	// order is a random permutation: correct checks take verifiers in this order from the front,
	// wrong checks from the back (4 per verifier at most, below the lock at 5, spread by wrongWindow).
	order     []int32
	next      atomic.Int64 // correct checks taken
	nextWrong atomic.Int64 // wrong checks taken
	wrongPct  int
	// wrongWindow spreads each verifier's wrong checks over that many others (1: four in a row).
	wrongWindow int
	passed      atomic.Int64
	mismatched  atomic.Int64
	tag         popTag
}

// popTag keeps populations apart: their phones, order ids and seeding figures.
type popTag struct {
	name        string // in order ids (ord_<name>_<i>) and request ids
	phonePrefix string // +86 and 3 digits; the verifier's number follows in 8
	figures     string // prefix of the seeding figures
}

// The gRPC Verify phase's population and the REST phase's own.
var (
	grpcPop = popTag{name: "benchpop", phonePrefix: "+86138", figures: "seed_"}
	restPop = popTag{name: "benchrest", phonePrefix: "+86135", figures: "seed_rest_"}
)

func (p *population) orderID(i int64) string { return fmt.Sprintf("ord_%s_%d", p.tag.name, i) }

// seedClients are the services the seeding calls.
type seedClients struct {
	sessions func(int64) verificationv1.VerificationInternalServiceClient
	timers   func(int64) deadlinev1.DeadlineServiceClient
	orders   filingv1.FilingServiceClient
}

// seed builds the Verify population as a running system holds it: for each pair of verifiers an
// order awaiting verification in filing, its session in verification (the codes captured at the
// gateway) and its deadline timer, so that the calls a passed session owes (MarkVerified,
// CancelDeadline) do the work they do in production.
func seed(ctx context.Context, o options, fig *figures, sink *suite.Sink, db *pgxpool.Pool, cl seedClients, tag popTag) (*population, error) {
	client, timers := cl.sessions, cl.timers
	n := o.population
	p := &population{phones: make([]string, n), tails: make([]string, n), sink: sink, wrongPct: o.wrongPct,
		wrongWindow: max(o.wrongWindow, 1), tag: tag}
	for i := range n {
		p.phones[i] = fmt.Sprintf("%s%08d", tag.phonePrefix, i)
		p.tails[i] = fmt.Sprintf("%06d", (i*7919)%1000000)
	}
	p.order = make([]int32, n)
	for i := range p.order {
		p.order[i] = int32(i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(n, func(i, j int) { p.order[i], p.order[j] = p.order[j], p.order[i] })

	sessions := int64(n / 2)
	deadlineAt := timestamppb.New(time.Now().Add(24 * time.Hour))
	if err := seedOrders(ctx, db, cl.orders, p, sessions, deadlineAt.AsTime()); err != nil {
		return nil, err
	}
	logf("seeding %d open verifiers: %d OpenSession calls (2 verifiers each), codes captured at the gateway", n, sessions)
	before := sink.Distinct()
	start := time.Now()
	res, err := runN(ctx, 2*o.clients, sessions, func(ctx context.Context, i int64) error {
		a, b := 2*i, 2*i+1
		order := p.orderID(i)
		_, err := client(i).OpenSession(ctx, &verificationv1.OpenSessionRequest{
			RequestId: "bench:open:" + order, OrderId: order, Submission: 1, DeadlineAt: deadlineAt,
			Verifiers: []*verificationv1.VerifierSpec{
				{Phone: p.phones[a], Roles: []string{"PRINCIPAL"}, IdTails: []string{p.tails[a]}},
				{Phone: p.phones[b], Roles: []string{"WEBSITE_PERSON"}, IdTails: []string{p.tails[b]}},
			},
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("OpenSession (%d failed): %w", res.errs, err)
	}
	opened := time.Since(start)
	if !sink.WaitDistinct(before+int64(n), 10*time.Minute) {
		return nil, fmt.Errorf("gateway got %d of %d codes", sink.Distinct()-before, n)
	}
	all := time.Since(start)
	fig.add(tag.figures+"open_session_rps", float64(sessions)/opened.Seconds(), "rps")
	fig.add(tag.figures+"codes_delivered_per_s", float64(n)/all.Seconds(), "msg/s")

	// Each session's deadline timer, as filing schedules it on submit: a passed session's CancelDeadline
	// then meets the timers (and idempotency answers) a running system holds, not empty tables.
	logf("scheduling the %d sessions' deadline timers (ScheduleDeadline, as filing does)", sessions)
	start = time.Now()
	res, err = runN(ctx, 2*o.clients, sessions, func(ctx context.Context, i int64) error {
		order := p.orderID(i)
		_, err := timers(i).ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{
			RequestId: fmt.Sprintf("filing:schedule-deadline:%s:1", order), OrderId: order, Submission: 1, DueTime: deadlineAt})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ScheduleDeadline (%d failed): %w", res.errs, err)
	}
	fig.add(tag.figures+"schedule_deadline_rps", float64(sessions)/time.Since(start).Seconds(), "rps")
	return p, nil
}

// seedOrders puts the population's orders into filing, awaiting verification of submission 1:
// one order made through CreateOrder gives a valid spec, which the others copy (COPY: 50,000 orders
// through SubmitOrder would take minutes and open sessions the seeding opens itself).
func seedOrders(ctx context.Context, db *pgxpool.Pool, orders filingv1.FilingServiceClient, p *population, n int64, deadline time.Time) error {
	logf("copying %d orders awaiting verification into filing", n)
	resp, err := orders.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: "bench-" + p.tag.name + "-template",
		Spec: &filingv1.OrderSpec{
			FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: "杭州示例科技有限公司",
			SubjectType: filingv1.SubjectType_SUBJECT_TYPE_ORGANIZATION, Principal: suite.Person("张三", p.phones[0], 0),
			Websites: []*filingv1.Website{{Domain: p.tag.name + ".cn", Name: "示例", Person: suite.Person("李四", p.phones[1], 1)}},
		}})
	if err != nil {
		return fmt.Errorf("template order: %w", err)
	}
	var filingType int32
	var spec []byte
	var tenant string
	if err := db.QueryRow(ctx, `SELECT filing_type, spec, tenant FROM filing.orders WHERE order_id = $1`, resp.GetOrder().GetOrderId()).
		Scan(&filingType, &spec, &tenant); err != nil {
		return fmt.Errorf("template order: %w", err)
	}
	conn, err := db.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	now := time.Now().UTC()
	copyRows := func(table string, cols []string, rows int64, row func(i int64) []any) error {
		var i int64
		_, err := conn.Conn().CopyFrom(ctx, pgx.Identifier{"filing", table}, cols, pgx.CopyFromFunc(func() ([]any, error) {
			if i >= rows {
				return nil, nil
			}
			i++
			return row(i - 1), nil
		}))
		if err != nil {
			return fmt.Errorf("copy filing.%s: %w", table, err)
		}
		return nil
	}
	if err := copyRows("orders", []string{"order_id", "filing_type", "spec", "state", "submission", "deadline_at", "created_at", "updated_at", "tenant"}, n,
		func(i int64) []any {
			return []any{p.orderID(i), filingType, spec, "AWAITING_VERIFICATION", int32(1), deadline, now, now, tenant}
		}); err != nil {
		return err
	}
	if err := copyRows("order_verifiers", []string{"order_id", "submission", "position", "phone", "roles"}, 2*n,
		func(k int64) []any {
			roles := []string{"PRINCIPAL"}
			if k%2 == 1 {
				roles = []string{"WEBSITE_PERSON"}
			}
			return []any{p.orderID(k / 2), int32(1), int32(k % 2), p.phones[k], roles}
		}); err != nil {
		return err
	}
	if err := copyRows("order_history", []string{"order_id", "at", "from_state", "to_state", "actor", "reason"}, n,
		func(i int64) []any { return []any{p.orderID(i), now, "DRAFT", "AWAITING_VERIFICATION", "bench", ""} }); err != nil {
		return err
	}
	// The answers those orders' SubmitOrder calls would have saved: filing's idempotency table then
	// holds what a running system's does when it is analyzed, rather than the template's one row.
	hash := make([]byte, 32)
	return copyRows("idempotency_keys", []string{"method", "request_id", "request_hash", "response", "created_at"}, n,
		func(i int64) []any {
			return []any{filingv1.FilingService_SubmitOrder_FullMethodName, "bench-" + p.tag.name + "-submit-" + p.orderID(i), hash, []byte{}, now}
		})
}

// verifyFunc makes one Verify call (over gRPC or through the edge); a failure is a gRPC status error
// as the service sent it.
type verifyFunc func(ctx context.Context, seq int64, req *verificationv1.VerifyRequest) error

// grpcVerify calls Verify on the clients' connections.
func grpcVerify(client func(int64) verificationv1.VerificationServiceClient) verifyFunc {
	return func(ctx context.Context, seq int64, req *verificationv1.VerifyRequest) error {
		_, err := client(seq).Verify(ctx, req)
		return err
	}
}

// run drives Verify: wrongPct of the checks carry a wrong code, the rest the right code of a verifier
// not yet checked correctly.
func (p *population) run(ctx context.Context, clients int, d time.Duration, verify verifyFunc) loadResult {
	n := int64(len(p.order))
	return runLoad(ctx, clients, d, func(ctx context.Context, seq int64) (bool, error) {
		wrong := int(seq%100) < p.wrongPct
		var v int32
		if wrong {
			j := p.nextWrong.Add(1) - 1
			// Blocks of 4·W wrong checks: each of W verifiers gets its 4, spaced W checks apart (a person
			// retyping a code), not 4 at once from 4 clients queueing on one session lock.
			w := int64(p.wrongWindow)
			idx := (j/(4*w))*w + j%w
			if j >= 4*int64(n) || idx >= int64(n) {
				return false, stopErr{}
			}
			v = p.order[int64(n)-1-idx]
		} else {
			j := p.next.Add(1) - 1
			if j >= n {
				logf("population used up: every verifier checked")
				return false, stopErr{}
			}
			v = p.order[j]
		}
		code, _ := p.sink.Code(p.phones[v])
		if wrong {
			c, _ := strconv.Atoi(code)
			code = fmt.Sprintf("%06d", (c+1)%1000000)
		}
		err := verify(ctx, seq, &verificationv1.VerifyRequest{Phone: p.phones[v], Code: code, IdTail: p.tails[v]})
		switch {
		case err == nil:
			p.passed.Add(1)
			return !wrong, nil
		case status.Code(err) == codes.NotFound && rpcReason(err) == notMatched:
			p.mismatched.Add(1)
			return wrong, nil // a correct check that mismatched is unexpected
		default:
			if ctx.Err() == nil {
				logf("Verify: %v", err)
			}
			return false, nil
		}
	})
}

func rpcReason(err error) string { return rpc.Reason(err) }

// notMatched is the reason of a check that matched no pending verifier.
var notMatched = rpc.ReasonName(verificationv1.ErrorReason_ERROR_REASON_VERIFICATION_NOT_MATCHED)
