// Command icpbench measures the suite: PostgreSQL's own limit (pgbench), the gRPC transport's (a
// health check), Verify at saturation over a population of open verifiers, SubmitOrder through to
// the SMS gateway, SMS dispatch, the deadline sweeper with 1M timers, and each service's memory.
// The four services run as processes (bench/internal/suite) on a fresh database, configured as an
// operator would for throughput. Every figure is printed as `name value unit` and written to --out.
//
//	go run ./bench/cmd/icpbench            # full run, about 10 minutes on 2 cores
//	go run ./bench/cmd/icpbench --quick    # smoke run, about 1-2 minutes
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/rpc"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

type options struct {
	quick         bool
	clients       int
	conns         int
	duration      time.Duration
	population    int
	wrongPct      int
	wrongWindow   int
	smsMessages   int
	smsClients    int
	submitOrders  int
	deadlineTotal int
	pgbenchScale  int
	rounds        int
	minRespRun    time.Duration
	out           string
	root          string
	adminURL      string
	keep          bool
	skipDeadline  bool
	extra         map[string][]string
	pprof         string
	dbParams      []string
	phases        map[string]bool
}

// phaseNames are the parts of a run, in order; --phases picks some (verify seeds its population,
// deadline needs submit's orders).
var phaseNames = []string{"pgbench", "noop", "sms", "verify", "submit", "deadline"}

func (o options) on(phase string) bool { return o.phases[phase] }

type figures struct {
	mu   sync.Mutex
	out  *os.File
	list []string
}

func (f *figures) add(name string, value float64, unit string) {
	line := fmt.Sprintf("%s %s %s", name, strconv.FormatFloat(value, 'f', decimals(value), 64), unit)
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Println(line)
	f.list = append(f.list, line)
	if f.out != nil {
		fmt.Fprintln(f.out, line)
		_ = f.out.Sync()
	}
}

// note adds a comment line ("# ...") to the results: how the run was set up.
func (f *figures) note(text string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fmt.Println("# " + text)
	if f.out != nil {
		fmt.Fprintln(f.out, "# "+text)
	}
}

func decimals(v float64) int {
	switch {
	case v == float64(int64(v)):
		return 0
	case v >= 100:
		return 1
	case v >= 1:
		return 2
	default:
		return 3
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func main() {
	o := options{extra: map[string][]string{}}
	flag.BoolVar(&o.quick, "quick", false, "smoke run (~1-2 min): small population, short runs")
	flag.IntVar(&o.clients, "clients", 16, "concurrent clients for pgbench, the no-op RPC, Verify and SubmitOrder")
	flag.IntVar(&o.conns, "conns", 4, "gRPC client connections the load generator spreads its clients over")
	flag.DurationVar(&o.duration, "duration", 0, "length of each saturation run (pgbench, noop, Verify); default 30s, quick 8s")
	flag.IntVar(&o.population, "population", 0, "open verifiers seeded before the Verify run; default 100000, quick 10000")
	flag.IntVar(&o.wrongPct, "wrong-percent", 20, "share of Verify checks that are wrong")
	flag.IntVar(&o.wrongWindow, "wrong-window", 4096, "a verifier's 4 wrong checks are spread over this many others' (1: four in a row, as clients racing on one verifier)")
	flag.IntVar(&o.smsMessages, "sms-messages", 0, "messages for the dispatch run; default 10000, quick 3000")
	flag.IntVar(&o.smsClients, "sms-clients", outbox.DefaultPipeline*outbox.DefaultParallel,
		"concurrent SendMessage calls in the dispatch run: by default those of its production caller, one verification replica's outbox relay")
	flag.IntVar(&o.submitOrders, "submit-orders", 0, "orders submitted (2 verifiers each); they are also the due deadlines; default 10000, quick 1000")
	flag.IntVar(&o.deadlineTotal, "deadline-total", 0, "pending deadline timers in all; default 1000000, quick 100000")
	flag.IntVar(&o.pgbenchScale, "pgbench-scale", 0, "pgbench -s; default the client count")
	flag.IntVar(&o.rounds, "rounds", 3, "pgbench and the Verify run alternate in this many rounds of --duration/rounds each, "+
		"so that a shared machine's drift weighs on both alike")
	flag.DurationVar(&o.minRespRun, "min-response-run", 0, "length of the Verify run with the default --min-response-time=150ms; default 10s, quick 4s")
	flag.StringVar(&o.out, "out", "", "results file (default bench/results.txt in the workspace)")
	flag.StringVar(&o.root, "root", "", "workspace root (default: found from the working directory via go.work)")
	flag.StringVar(&o.adminURL, "database-url", suite.AdminURL(), "PostgreSQL server to create the benchmark databases on")
	flag.BoolVar(&o.keep, "keep", false, "keep the databases afterwards")
	flag.BoolVar(&o.skipDeadline, "skip-deadline", false, "skip the 1M-timer deadline run")
	flag.StringVar(&o.pprof, "pprof", "", "run this service (verification, sms-dispatch, filing or deadline) with net/http/pprof (bench/cmd/pprofservice) and save a CPU profile of each phase to bench/<service>_<phase>_cpu.pprof")
	phases := flag.String("phases", strings.Join(phaseNames, ","), "the phases to run, comma-separated (deadline implies submit)")
	var dbParams multiFlag
	flag.Var(&dbParams, "db-param", "extra query parameter on every service's database URL, e.g. options=-c%20synchronous_commit%3Doff (a diagnostic, not an operator setting; repeatable)")
	var extraFlags multiFlag
	flag.Var(&extraFlags, "service-flag", "extra flag for a service, as service=--flag=value (repeatable; a later flag wins)")
	flag.Parse()
	o.dbParams = dbParams
	o.phases = map[string]bool{}
	for _, p := range strings.Split(*phases, ",") {
		if !slices.Contains(phaseNames, p) {
			fmt.Fprintf(os.Stderr, "--phases: unknown phase %q (known: %s)\n", p, strings.Join(phaseNames, ","))
			os.Exit(2)
		}
		o.phases[p] = true
	}
	if o.phases["deadline"] {
		o.phases["submit"] = true
	}
	if o.pprof != "" && !slices.Contains(suite.Services, o.pprof) {
		fmt.Fprintf(os.Stderr, "--pprof: unknown service %q\n", o.pprof)
		os.Exit(2)
	}
	for _, e := range extraFlags {
		svc, fl, ok := strings.Cut(e, "=")
		if !ok {
			fmt.Fprintln(os.Stderr, "--service-flag wants service=--flag=value")
			os.Exit(2)
		}
		o.extra[svc] = append(o.extra[svc], fl)
	}
	def := func(p *int, full, quick int) {
		if *p == 0 {
			*p = map[bool]int{false: full, true: quick}[o.quick]
		}
	}
	def(&o.population, 100000, 10000)
	def(&o.smsMessages, 10000, 3000)
	def(&o.submitOrders, 10000, 1000)
	def(&o.deadlineTotal, 1000000, 100000)
	def(&o.pgbenchScale, o.clients, o.clients)
	if o.duration == 0 {
		o.duration = map[bool]time.Duration{false: 30 * time.Second, true: 8 * time.Second}[o.quick]
	}
	// pgbench -T takes whole seconds: a round is at least one.
	o.rounds = max(1, min(o.rounds, int(o.duration/time.Second)))
	if o.minRespRun == 0 {
		o.minRespRun = map[bool]time.Duration{false: 10 * time.Second, true: 4 * time.Second}[o.quick]
	}
	if o.root == "" {
		o.root = suite.FindRoot()
	}
	if o.out == "" {
		o.out = filepath.Join(o.root, "bench", "results.txt")
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "icpbench:", err)
		os.Exit(1)
	}
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func run(o options) error {
	ctx := context.Background()
	started := time.Now()
	f, err := os.Create(o.out)
	if err != nil {
		return err
	}
	defer f.Close()
	fig := &figures{out: f}
	fmt.Fprintf(f, "# icpbench %s quick=%v clients=%d duration=%s population=%d cpus=%d go=%s\n",
		started.UTC().Format(time.RFC3339), o.quick, o.clients, o.duration, o.population, runtime.NumCPU(), runtime.Version())

	restore, err := ensureAutovacuum(ctx, o.adminURL, fig)
	if err != nil {
		return err
	}
	defer restore()

	// 1. PostgreSQL's own limit: measured here, or in rounds alternating with the Verify run.
	var pb *pgbenchDB
	if o.on("pgbench") {
		if pb, err = newPgbench(ctx, o); err != nil {
			return fmt.Errorf("pgbench: %w", err)
		}
		defer pb.drop()
		if !o.on("verify") {
			if pgbenchTPS, err = pb.run(ctx, o.duration); err != nil {
				return fmt.Errorf("pgbench: %w", err)
			}
			fig.add("pgbench_tps", pgbenchTPS, "tps")
		}
	}

	// 2. The suite: binaries, database, SMS gateway, four processes.
	binDir, err := os.MkdirTemp("", "icpbench-bin")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	logf("building the services")
	if err := suite.Build(o.root, binDir); err != nil {
		return fmt.Errorf("build: %w", err)
	}
	env := map[string][]string{}
	if o.pprof != "" {
		if pprofAddr, err = suite.FreeAddr(); err != nil {
			return err
		}
		env[o.pprof] = []string{"PPROF_ADDR=" + pprofAddr, "PPROF_SERVICE=" + o.pprof}
		b := exec.Command("go", "build", "-o", filepath.Join(binDir, o.pprof), "./bench/cmd/pprofservice")
		b.Dir, b.Stdout, b.Stderr = o.root, os.Stderr, os.Stderr
		if err := b.Run(); err != nil {
			return fmt.Errorf("build pprofservice: %w", err)
		}
	}
	dbName, dbURL, err := suite.CreateDatabase(ctx, o.adminURL, "icpbench")
	if err != nil {
		return err
	}
	if !o.keep {
		defer suite.DropDatabase(context.Background(), o.adminURL, dbName) //nolint:errcheck
	}
	sink, err := suite.NewSink()
	if err != nil {
		return err
	}
	defer sink.Close()
	extra := map[string][]string{
		"verification": {"--min-response-time=0", "--verify-rate=0", "--resend-rate=0"},
		// the gateway's batch endpoint: a worker's messages in one POST, as an operator runs it for speed
		"sms-dispatch": {"--rate-per-minute=0", "--rate-per-hour=0", "--rate-per-day=0", "--dispatch-workers=64",
			"--webhook-batch-url=" + sink.BatchURL},
		"deadline": {"--sweep-batch=500", "--fire-concurrency=32"},
	}
	for svc, fl := range o.extra {
		extra[svc] = append(extra[svc], fl...)
	}
	pools := map[string]int{"filing": o.clients, "verification": o.clients + 8, "sms-dispatch": o.clients, "deadline": o.clients}
	svcURL := dbURL
	if len(o.dbParams) > 0 {
		svcURL = suite.WithParams(dbURL, o.dbParams...)
	}
	s, err := suite.Start(suite.Config{BinDir: binDir, DatabaseURL: svcURL, PoolMaxConns: pools, WebhookURL: sink.URL, Extra: extra, Env: env})
	if err != nil {
		return err
	}
	defer s.StopAll()
	for _, name := range suite.Services {
		logf("%s: %s", name, strings.Join(redactArgs(s.Procs[name].Args), " "))
	}
	db, err := pgxpool.New(ctx, suite.WithParams(dbURL, "pool_max_conns=8"))
	if err != nil {
		return err
	}
	statsDB, statsName = db, dbName
	defer db.Close()

	conns := map[string][]*grpc.ClientConn{}
	for _, name := range suite.Services {
		for range o.conns {
			c, err := suite.Dial(s.Addrs[name])
			if err != nil {
				return err
			}
			defer c.Close()
			conns[name] = append(conns[name], c)
		}
	}
	pick := func(name string, i int64) *grpc.ClientConn { return conns[name][int(i)%len(conns[name])] }

	time.Sleep(2 * time.Second)
	for _, name := range suite.Services {
		kib, _ := s.Procs[name].RSSKiB()
		fig.add("rss_mb_"+under(name)+"_idle", float64(kib)/1024, "MB")
	}

	// 3. The transport's own limit: grpc.health.v1 Check on verification, through the same server stack.
	var noop loadResult
	if o.on("noop") {
		logf("no-op RPC (grpc.health.v1 Check on verification) for %s", o.duration)
		noop = runLoad(ctx, o.clients, o.duration, func(ctx context.Context, seq int64) (bool, error) {
			_, err := healthpb.NewHealthClient(pick("verification", seq)).Check(ctx, &healthpb.HealthCheckRequest{})
			return err == nil, nil
		})
		fig.add("grpc_noop_rps", noop.rps(), "rps")
		fig.add("grpc_noop_p50_ms", ms(noop.pct(50)), "ms")
	}

	cpuOf = func() map[string]float64 { return cpuSnapshot(s) }
	stmts := newStatements(ctx, db, o.root)

	// 4. The Verify population, seeded first: the SMS run then meets tables of a running system
	// (100,000 messages), not empty ones.
	var pop *population
	if o.on("verify") {
		var err error
		if pop, err = seed(ctx, o, fig, sink, db, seedClients{
			sessions: func(i int64) verificationv1.VerificationInternalServiceClient {
				return verificationv1.NewVerificationInternalServiceClient(pick("verification", i))
			},
			timers: func(i int64) deadlinev1.DeadlineServiceClient {
				return deadlinev1.NewDeadlineServiceClient(pick("deadline", i))
			},
			orders: filingv1.NewFilingServiceClient(pick("filing", 0)),
		}); err != nil {
			return err
		}
		if err := analyze(ctx, db); err != nil {
			return err
		}
	}

	// 5. SMS dispatch: SendMessage straight to sms-dispatch, counted at the gateway.
	if o.on("sms") {
		profile(o, "sms", 10*time.Second)
		stmts.begin(ctx)
		if err := smsDispatch(ctx, o, fig, sink, func(i int64) smsv1.SmsDispatchServiceClient {
			return smsv1.NewSmsDispatchServiceClient(pick("sms-dispatch", i))
		}); err != nil {
			return err
		}
		stmts.end(ctx, "sms")
	}

	// 6. Verify, with the default anti-timing floor and at saturation.
	var vr loadResult
	if o.on("verify") {
		var err error
		if vr, err = verifyPhases(ctx, o, fig, s, pop, pb, db, dbName, stmts, pick); err != nil {
			return err
		}
	}

	// 7. SubmitOrder through to the messages handed to the provider.
	var orders []string
	if o.on("submit") {
		var err error
		stmts.begin(ctx)
		if orders, err = submit(ctx, o, fig, sink, func(i int64) filingv1.FilingServiceClient {
			return filingv1.NewFilingServiceClient(pick("filing", i))
		}); err != nil {
			return err
		}
		stmts.end(ctx, "submit")
	}

	// 8. The deadline sweeper with 1M pending timers.
	if o.on("deadline") && !o.skipDeadline {
		if err := deadlineRun(ctx, o, fig, db, stmts, orders, func(i int64) filingv1.FilingServiceClient {
			return filingv1.NewFilingServiceClient(pick("filing", i))
		}); err != nil {
			return err
		}
	}

	// Ratios, from figures of this run.
	ratio := func(name string, a, b float64) {
		if a > 0 && b > 0 {
			fig.add(name, a/b, "ratio")
		}
	}
	ratio("verify_vs_pgbench", vr.rps(), pgbenchTPS)
	ratio("verify_vs_noop", vr.rps(), noop.rps())
	ratio("submit_vs_pgbench", submitRPS, pgbenchTPS)
	for _, name := range suite.Services {
		if !s.Procs[name].Running() {
			return fmt.Errorf("%s exited during the run:\n%s", name, s.Procs[name].Output())
		}
	}
	fig.add("bench_wall_seconds", time.Since(started).Seconds(), "s")
	return nil
}

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
	r150 := pop.run(ctx, o.clients, o.minRespRun, verifyClient)
	fig.add("verify_minresp150_rps", r150.rps(), "rps")
	fig.add("verify_minresp150_p50_ms", ms(r150.pct(50)), "ms")
	if err := s.Restart("verification", "--min-response-time=0"); err != nil {
		return loadResult{}, err
	}
	time.Sleep(time.Second)

	// 6b. Verify at saturation, with RSS sampled meanwhile, in rounds alternating with pgbench.
	rounds := o.rounds
	if pb == nil {
		rounds = 1
	}
	per := o.duration / time.Duration(rounds)
	logf("Verify at saturation: %d clients for %s in %d round(s) alternating with pgbench (%d%% wrong)", o.clients, o.duration, rounds, o.wrongPct)
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
	var vr loadResult
	var commits int64
	var tpsList, rpsList, ratios []string
	var tpsSum, tps float64
	cpu := map[string]float64{} // CPU seconds used during the Verify rounds only
	stmts.begin(ctx)            // pgbench's statements run in its own database: not counted
	for r := range rounds {
		if pb != nil {
			var err error
			if tps, err = pb.run(ctx, per); err != nil {
				return loadResult{}, fmt.Errorf("pgbench: %w", err)
			}
			tpsSum += tps
			tpsList = append(tpsList, strconv.FormatFloat(tps, 'f', 0, 64))
		}
		statsBefore, _ := dbStats(ctx, db, dbName)
		cpu0 := cpuSnapshot(s)
		if r == rounds-1 {
			profile(o, "verify", min(per-3*time.Second, 20*time.Second))
		}
		res := pop.run(ctx, o.clients, per, verifyClient)
		for k, v := range cpuSnapshot(s) {
			cpu[k] += v - cpu0[k]
		}
		statsAfter, _ := dbStats(ctx, db, dbName)
		commits += statsAfter.commits - statsBefore.commits
		vr = vr.merge(res)
		rpsList = append(rpsList, strconv.FormatFloat(res.rps(), 'f', 0, 64))
		if pb != nil {
			ratios = append(ratios, strconv.FormatFloat(res.rps()/tps, 'f', 3, 64))
		}
	}
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
		// Each round's pgbench ran as long as its Verify run: the mean is the rate over all rounds.
		pgbenchTPS = tpsSum / float64(rounds)
		fig.add("pgbench_tps", pgbenchTPS, "tps")
		fig.note(fmt.Sprintf("rounds of %s: pgbench_tps %s; verify_rps %s; verify_vs_pgbench %s",
			per, strings.Join(tpsList, " "), strings.Join(rpsList, " "), strings.Join(ratios, " ")))
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

// cpuCores adds <prefix>_cpu_cores_<process> for the CPU each process used between two snapshots.
func cpuCores(fig *figures, prefix string, a, b map[string]float64, d time.Duration) {
	for _, k := range []string{"postgres", "filing", "verification", "sms_dispatch", "deadline", "loadgen"} {
		fig.add(prefix+"_cpu_cores_"+k, (b[k]-a[k])/d.Seconds(), "cores")
	}
}

// cpuSnapshot reads the CPU seconds used so far by each service, PostgreSQL and this process.
func cpuSnapshot(s *suite.Suite) map[string]float64 {
	m := map[string]float64{"postgres": suite.PostgresCPUSeconds()}
	for _, name := range suite.Services {
		m[under(name)], _ = suite.CPUSeconds(s.Procs[name].PID())
	}
	m["loadgen"], _ = suite.CPUSeconds(os.Getpid())
	return m
}

// pprofAddr is where the --pprof service serves net/http/pprof.
var pprofAddr string

// profile starts, in the background, a CPU profile of the --pprof service over the next d of the
// phase, saved to bench/<service>_<phase>_cpu.pprof. It does nothing without --pprof.
func profile(o options, phase string, d time.Duration) {
	if o.pprof == "" {
		return
	}
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", pprofAddr, max(1, int(d.Seconds()))))
		if err != nil {
			logf("pprof: %v", err)
			return
		}
		defer resp.Body.Close()
		path := filepath.Join(o.root, "bench", under(o.pprof)+"_"+phase+"_cpu.pprof")
		f, err := os.Create(path)
		if err != nil {
			return
		}
		_, _ = io.Copy(f, resp.Body)
		f.Close()
		logf("CPU profile of %s during %s: %s (go tool pprof -top %s)", o.pprof, phase, path, path)
	}()
}

func under(s string) string { return strings.ReplaceAll(s, "-", "_") }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "--hmac-keys=") {
			a = "--hmac-keys=<bench key>"
		}
		out[i] = a
	}
	return out
}

type pgStats struct{ commits int64 }

func dbStats(ctx context.Context, db *pgxpool.Pool, name string) (pgStats, error) {
	var s pgStats
	err := db.QueryRow(ctx, `SELECT xact_commit FROM pg_stat_database WHERE datname = $1`, name).Scan(&s.commits)
	return s, err
}

// ---------- pgbench ----------

var pgbenchTPS, submitRPS float64

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

// ---------- SMS dispatch ----------

func smsDispatch(ctx context.Context, o options, fig *figures, sink *suite.Sink, client func(int64) smsv1.SmsDispatchServiceClient) error {
	n := int64(o.smsMessages)
	logf("SMS dispatch: %d SendMessage calls (%d at once), counted at the gateway", n, o.smsClients)
	before := sink.Distinct()
	batches0 := sink.Batches()
	conns0 := sink.Conns()
	c0, _ := dbStats(ctx, statsDB, statsName)
	cpu0 := cpuOf()
	expire := timestamppb.New(time.Now().Add(24 * time.Hour))
	deadline := time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339)
	start := time.Now()
	res, err := runN(ctx, o.smsClients, n, func(ctx context.Context, i int64) error {
		_, err := client(i).SendMessage(ctx, &smsv1.SendMessageRequest{
			MessageId: fmt.Sprintf("bench-sms-%d", i), Phone: fmt.Sprintf("+86137%08d", i),
			Template:   smsv1.Template_TEMPLATE_VERIFICATION_CODE,
			Params:     map[string]string{"code": fmt.Sprintf("%06d", i%1000000), "deadline": deadline},
			ExpireTime: expire, OrderId: fmt.Sprintf("ord_benchsms_%d", i),
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("SendMessage (%d failed): %w", res.errs, err)
	}
	accepted := time.Since(start)
	if !sink.WaitDistinct(before+n, 5*time.Minute) {
		return fmt.Errorf("gateway got %d of %d messages", sink.Distinct()-before, n)
	}
	all := time.Since(start)
	fig.add("sms_send_rpc_rps", float64(n)/accepted.Seconds(), "rps")
	fig.add("sms_dispatch_per_s", float64(n)/all.Seconds(), "msg/s")
	c1, _ := dbStats(ctx, statsDB, statsName)
	fig.add("sms_db_commits_per_msg", float64(c1.commits-c0.commits)/float64(n), "tx/msg")
	fig.add("sms_gateway_tcp_conns", float64(sink.Conns()-conns0), "conns")
	if b := sink.Batches() - batches0; b > 0 {
		fig.add("sms_msgs_per_gateway_batch", float64(n)/float64(b), "msg/POST")
	}
	cpuCores(fig, "sms", cpu0, cpuOf(), all)
	return nil
}

// ---------- the Verify population ----------

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
}

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
func seed(ctx context.Context, o options, fig *figures, sink *suite.Sink, db *pgxpool.Pool, cl seedClients) (*population, error) {
	client, timers := cl.sessions, cl.timers
	n := o.population
	p := &population{phones: make([]string, n), tails: make([]string, n), sink: sink, wrongPct: o.wrongPct,
		wrongWindow: max(o.wrongWindow, 1)}
	for i := range n {
		p.phones[i] = fmt.Sprintf("+86138%08d", i)
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
		order := fmt.Sprintf("ord_benchpop_%d", i)
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
	fig.add("seed_open_session_rps", float64(sessions)/opened.Seconds(), "rps")
	fig.add("seed_codes_delivered_per_s", float64(n)/all.Seconds(), "msg/s")

	// Each session's deadline timer, as filing schedules it on submit: a passed session's CancelDeadline
	// then meets the timers (and idempotency answers) a running system holds, not empty tables.
	logf("scheduling the %d sessions' deadline timers (ScheduleDeadline, as filing does)", sessions)
	start = time.Now()
	res, err = runN(ctx, 2*o.clients, sessions, func(ctx context.Context, i int64) error {
		order := fmt.Sprintf("ord_benchpop_%d", i)
		_, err := timers(i).ScheduleDeadline(ctx, &deadlinev1.ScheduleDeadlineRequest{
			RequestId: fmt.Sprintf("filing:schedule-deadline:%s:1", order), OrderId: order, Submission: 1, DueTime: deadlineAt})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("ScheduleDeadline (%d failed): %w", res.errs, err)
	}
	fig.add("seed_schedule_deadline_rps", float64(sessions)/time.Since(start).Seconds(), "rps")
	return p, nil
}

// seedOrders puts the population's orders into filing, awaiting verification of submission 1:
// one order made through CreateOrder gives a valid spec, which the others copy (COPY: 50,000 orders
// through SubmitOrder would take minutes and open sessions the seeding opens itself).
func seedOrders(ctx context.Context, db *pgxpool.Pool, orders filingv1.FilingServiceClient, p *population, n int64, deadline time.Time) error {
	logf("copying %d orders awaiting verification into filing", n)
	resp, err := orders.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: "bench-pop-template",
		Spec: &filingv1.OrderSpec{
			FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: "杭州示例科技有限公司",
			SubjectType: filingv1.SubjectType_SUBJECT_TYPE_ORGANIZATION, Principal: suite.Person("张三", p.phones[0], 0),
			Websites: []*filingv1.Website{{Domain: "benchpop.cn", Name: "示例", Person: suite.Person("李四", p.phones[1], 1)}},
		}})
	if err != nil {
		return fmt.Errorf("template order: %w", err)
	}
	var filingType int32
	var spec []byte
	if err := db.QueryRow(ctx, `SELECT filing_type, spec FROM filing.orders WHERE order_id = $1`, resp.GetOrder().GetOrderId()).
		Scan(&filingType, &spec); err != nil {
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
	orderID := func(i int64) string { return fmt.Sprintf("ord_benchpop_%d", i) }
	if err := copyRows("orders", []string{"order_id", "filing_type", "spec", "state", "submission", "deadline_at", "created_at", "updated_at"}, n,
		func(i int64) []any {
			return []any{orderID(i), filingType, spec, "AWAITING_VERIFICATION", int32(1), deadline, now, now}
		}); err != nil {
		return err
	}
	if err := copyRows("order_verifiers", []string{"order_id", "submission", "position", "phone", "roles"}, 2*n,
		func(k int64) []any {
			roles := []string{"PRINCIPAL"}
			if k%2 == 1 {
				roles = []string{"WEBSITE_PERSON"}
			}
			return []any{orderID(k / 2), int32(1), int32(k % 2), p.phones[k], roles}
		}); err != nil {
		return err
	}
	if err := copyRows("order_history", []string{"order_id", "at", "from_state", "to_state", "actor", "reason"}, n,
		func(i int64) []any { return []any{orderID(i), now, "DRAFT", "AWAITING_VERIFICATION", "bench", ""} }); err != nil {
		return err
	}
	// The answers those orders' SubmitOrder calls would have saved: filing's idempotency table then
	// holds what a running system's does when it is analyzed, rather than the template's one row.
	hash := make([]byte, 32)
	return copyRows("idempotency_keys", []string{"method", "request_id", "request_hash", "response", "created_at"}, n,
		func(i int64) []any {
			return []any{filingv1.FilingService_SubmitOrder_FullMethodName, "bench-pop-submit-" + orderID(i), hash, []byte{}, now}
		})
}

// run drives Verify: wrongPct of the checks carry a wrong code, the rest the right code of a verifier
// not yet checked correctly.
func (p *population) run(ctx context.Context, clients int, d time.Duration, client func(int64) verificationv1.VerificationServiceClient) loadResult {
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
		_, err := client(seq).Verify(ctx, &verificationv1.VerifyRequest{Phone: p.phones[v], Code: code, IdTail: p.tails[v]})
		switch {
		case err == nil:
			p.passed.Add(1)
			return !wrong, nil
		case status.Code(err) == codes.NotFound && rpcReason(err) == "VERIFICATION_NOT_MATCHED":
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

// ---------- SubmitOrder ----------

func submit(ctx context.Context, o options, fig *figures, sink *suite.Sink, client func(int64) filingv1.FilingServiceClient) ([]string, error) {
	n := int64(o.submitOrders)
	ids := make([]string, n)
	logf("creating %d draft orders (2 verifiers each)", n)
	start := time.Now()
	res, err := runN(ctx, o.clients, n, func(ctx context.Context, i int64) error {
		principal := suite.Person("张三", fmt.Sprintf("+86139%08d", 2*i), int(2*i))
		web := suite.Person("李四", fmt.Sprintf("+86139%08d", 2*i+1), int(2*i+1))
		resp, err := client(i).CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: fmt.Sprintf("bench-create-%d", i),
			Spec: &filingv1.OrderSpec{
				FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: fmt.Sprintf("杭州示例科技有限公司%d", i),
				SubjectType: filingv1.SubjectType_SUBJECT_TYPE_ORGANIZATION, Principal: principal,
				Websites: []*filingv1.Website{{Domain: fmt.Sprintf("bench%d.cn", i), Name: "示例", Person: web}},
			}})
		if err != nil {
			return err
		}
		ids[i] = resp.Order.OrderId
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("CreateOrder (%d failed): %w", res.errs, err)
	}
	fig.add("create_order_rps", float64(n)/time.Since(start).Seconds(), "rps")

	logf("submitting %d orders; clock stops when the gateway has all %d codes", n, 2*n)
	before := sink.Distinct()
	c0, _ := dbStats(ctx, statsDB, statsName)
	cpu0 := cpuOf()
	profile(o, "submit", 10*time.Second)
	start = time.Now()
	res, err = runN(ctx, o.clients, n, func(ctx context.Context, i int64) error {
		_, err := client(i).SubmitOrder(ctx, &filingv1.SubmitOrderRequest{RequestId: "bench-submit-" + ids[i], OrderId: ids[i]})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("SubmitOrder (%d failed): %w", res.errs, err)
	}
	rpcs := time.Since(start)
	if !sink.WaitDistinct(before+2*n, 10*time.Minute) {
		return nil, fmt.Errorf("gateway got %d of %d codes", sink.Distinct()-before, 2*n)
	}
	all := time.Since(start)
	submitRPS = float64(n) / all.Seconds()
	fig.add("submit_rpc_rps", float64(n)/rpcs.Seconds(), "rps")
	fig.add("submit_rps", submitRPS, "rps")
	c1, _ := dbStats(ctx, statsDB, statsName)
	fig.add("submit_db_commits_per_order", float64(c1.commits-c0.commits)/float64(n), "tx/order")
	cpuCores(fig, "submit", cpu0, cpuOf(), all)
	return ids, nil
}

// ---------- deadline ----------

const claimSQL = `WITH due AS (
		SELECT order_id, submission FROM deadlines
		WHERE state = 'PENDING' AND next_attempt_at <= $1
		ORDER BY next_attempt_at, order_id COLLATE "C", submission
		LIMIT $2
		FOR UPDATE SKIP LOCKED
	)
	UPDATE deadlines d SET next_attempt_at = $3, attempts = d.attempts + 1
	FROM due WHERE d.order_id = due.order_id AND d.submission = due.submission
	RETURNING d.order_id, d.submission, d.due_at, d.state, d.next_attempt_at, d.attempts, d.last_error, d.fired_at, d.closed, d.created_at`

func deadlineRun(ctx context.Context, o options, fig *figures, db *pgxpool.Pool, stmts *statements, orders []string,
	client func(int64) filingv1.FilingServiceClient) error {
	due := len(orders)
	// Wait until every submitted order's timer exists (the filing outbox schedules them).
	end := time.Now().Add(2 * time.Minute)
	for {
		var k int
		if err := db.QueryRow(ctx, `SELECT count(*) FROM deadline.deadlines WHERE order_id = ANY($1) AND state = 'PENDING'`, orders).Scan(&k); err != nil {
			return err
		}
		if k >= due {
			break
		}
		if time.Now().After(end) {
			return fmt.Errorf("only %d of %d deadlines scheduled", k, due)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The rest of the total: far-future timers (the seeded population's timers count too).
	var pending int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM deadline.deadlines WHERE state = 'PENDING'`).Scan(&pending); err != nil {
		return err
	}
	far := o.deadlineTotal - pending
	logf("COPY %d far-future pending timers into deadline.deadlines", far)
	now := time.Now().UTC()
	start := time.Now()
	conn, err := db.Acquire(ctx)
	if err != nil {
		return err
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
		return fmt.Errorf("copy: %w", err)
	}
	if err := analyze(ctx, db); err != nil {
		return err
	}
	logf("copied %d rows in %s", n, time.Since(start).Round(time.Millisecond))
	var total int64
	if err := db.QueryRow(ctx, `SELECT count(*) FROM deadline.deadlines WHERE state = 'PENDING'`).Scan(&total); err != nil {
		return err
	}
	fig.add("deadline_pending_rows", float64(total), "rows")

	// T: one instant for all due orders, far enough ahead for the moves below.
	T := time.Now().Add(20 * time.Second).UTC().Truncate(time.Millisecond)
	tx, err := db.Begin(ctx)
	if err != nil {
		return err
	}
	for _, q := range []string{
		`UPDATE verification.sessions SET deadline_at = $2 WHERE order_id = ANY($1) AND submission = 1`,
		`UPDATE deadline.deadlines SET due_at = $2, next_attempt_at = $2 WHERE order_id = ANY($1) AND submission = 1 AND state = 'PENDING'`,
		`UPDATE filing.orders SET deadline_at = $2 WHERE order_id = ANY($1)`,
	} {
		tag, err := tx.Exec(ctx, q, orders, T)
		if err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("%s: %w", q, err)
		}
		if tag.RowsAffected() != int64(due) {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("%s moved %d rows, want %d", q, tag.RowsAffected(), due)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return err
	}
	if err := analyze(ctx, db); err != nil {
		return err
	}

	// The claim on 1M rows: EXPLAIN ANALYZE (rolled back, at T so the due rows qualify) and the
	// prepared statement's own timing.
	claimTimes, plan, err := claimPlan(ctx, db, T)
	if err != nil {
		return err
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
		return fmt.Errorf("set-up took past T; raise the margin")
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
		return err
	}
	seen, lastExact := 0, time.Now()
	for {
		var maxID int64
		var k int
		if err := db.QueryRow(ctx, `SELECT coalesce(max(id), $1), count(*) FILTER (WHERE to_state = 'RETURNED')
			FROM filing.order_history WHERE id > $1`, afterID).Scan(&maxID, &k); err != nil {
			return err
		}
		afterID, seen = maxID, seen+k
		if seen >= due || time.Since(lastExact) > 2*time.Second {
			lastExact = time.Now()
			var exact int
			if err := db.QueryRow(ctx, `SELECT count(*) FROM filing.orders WHERE state = 'RETURNED'`).Scan(&exact); err != nil {
				return err
			}
			if exact >= due {
				break
			}
		}
		if time.Now().After(T.Add(5 * time.Minute)) {
			return fmt.Errorf("only %d of %d returned 5 minutes after T", seen, due)
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
		return err
	}
	if err := db.QueryRow(ctx, `SELECT count(*) FROM filing.orders WHERE order_id = ANY($1) AND return_reason <> 0`, orders).Scan(&reasons); err != nil {
		return err
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
			return err
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
		return fmt.Errorf("ListOrders shows %d of %d due orders RETURNED for VERIFICATION_TIMEOUT", listed, due)
	}
	fig.add(fmt.Sprintf("deadline_due%dk_seconds", due/1000), last.Sub(T).Seconds(), "s")
	fig.add("deadline_due_observed_seconds", observed.Seconds(), "s")
	var firedLast time.Time
	if err := db.QueryRow(ctx, `SELECT max(fired_at) FROM deadline.deadlines WHERE order_id = ANY($1)`, orders).Scan(&firedLast); err == nil {
		// when the sweeper had closed the last session (the rest is the outbox delivering ReturnOrder)
		fig.add("deadline_last_fired_seconds", firedLast.Sub(T).Seconds(), "s")
	}
	fig.add("deadline_early_returns", float64(early), "count")
	var extra int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM deadline.deadlines WHERE state <> 'PENDING' AND order_id LIKE 'ord_benchfar_%'`).Scan(&extra); err != nil {
		return err
	}
	fig.add("deadline_far_fired", float64(extra), "count")
	return nil
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
