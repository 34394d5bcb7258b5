// Command icpbench measures the suite: PostgreSQL's own limit (pgbench), the gRPC transport's (a
// health check), Verify at saturation over a population of open verifiers, the same Verify load as
// REST/JSON through the edge (services/edge) over a population of its own, SubmitOrder through to
// the SMS gateway, SMS dispatch (the webhook, and the Aliyun and CMPP protocols against their fakes,
// with the delivery receipts back), the deadline sweeper with 1M timers, and each service's memory.
// The four services run as processes (bench/internal/suite) on a fresh database, configured as an
// operator would for throughput. Every figure is printed as `name value unit` and written to --out.
//
//	go run ./bench/cmd/icpbench            # full run, about 10 minutes on 2 cores
//	go run ./bench/cmd/icpbench --quick    # smoke run, about 1-2 minutes
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"

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
	riverWorkers  int
	steadyWindow  int
}

// phaseNames are the parts of a run, in order; --phases picks some (verify, verify_steady and rest
// each seed their population, deadline needs submit's orders, river submits orders of its own;
// sms_aliyun and sms_cmpp each run an sms-dispatch of their own against a fake gateway).
var phaseNames = []string{"pgbench", "noop", "sms", "sms_aliyun", "sms_cmpp", "verify", "verify_steady", "rest", "submit", "deadline", "river"}

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

// target adds a comment line that holds a figure to its target (at least want), so that the
// results say whether it was met without a look at docs/performance.md.
func (f *figures) target(name string, got, want float64, unit string) {
	f.note(targetLine(name, got, want, unit))
}

func targetLine(name string, got, want float64, unit string) string {
	verdict := "met"
	if got < want {
		verdict = "NOT met"
	}
	return fmt.Sprintf("target %s >= %s %s: %s", name, strconv.FormatFloat(want, 'f', decimals(want), 64), unit, verdict)
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
	flag.IntVar(&o.riverWorkers, "river-workers", 2000, "River's MaxWorkers in the river phase (River's own benchmark runs 2,000)")
	flag.IntVar(&o.steadyWindow, "steady-window", 64, "verify_steady: an order's second verifier is checked this many checks after its first (1: back to back)")
	flag.BoolVar(&o.skipDeadline, "skip-deadline", false, "skip the 1M-timer deadline run")
	flag.StringVar(&o.pprof, "pprof", "", "run this service (verification, sms-dispatch, filing, deadline, or edge for the rest phase) with net/http/pprof (bench/cmd/pprofservice) and save a CPU profile of each phase to bench/<service>_<phase>_cpu.pprof")
	phases := flag.String("phases", strings.Join(phaseNames, ","), "the phases to run, comma-separated (deadline implies submit; sms_aliyun and sms_cmpp send the sms load through the Aliyun and CMPP fakes of services/sms-dispatch/providertest)")
	var dbParams multiFlag
	flag.Var(&dbParams, "db-param", "extra query parameter on every service's database URL, e.g. options=-c%20synchronous_commit%3Doff (a diagnostic, not an operator setting; repeatable)")
	var extraFlags multiFlag
	flag.Var(&extraFlags, "service-flag", "extra flag for a service, as service=--flag=value (repeatable; a later flag wins; sms-dispatch's reach the sms_aliyun and sms_cmpp processes too)")
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
	if o.pprof != "" && !slices.Contains(suite.Services, o.pprof) && o.pprof != suite.Edge {
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
	if err := loadClaimSQL(o.root); err != nil {
		fmt.Fprintln(os.Stderr, "icpbench: the deadline claim statement:", err)
		os.Exit(1)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "icpbench:", err)
		os.Exit(1)
	}
}

type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

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
		// One load generator checks thousands of phones with 20% wrong codes: the per-caller throttle of
		// mismatched phones (friction against locking strangers) would refuse it at once.
		"verification": {"--min-response-time=0", "--verify-rate=0", "--resend-rate=0", "--max-mismatched-phones-per-caller=0"},
		// the gateway's batch endpoint: a worker's messages in one POST, as an operator runs it for speed
		"sms-dispatch": {"--rate-per-minute=0", "--rate-per-hour=0", "--rate-per-day=0", "--dispatch-workers=64",
			"--webhook-batch-url=" + sink.BatchURL},
		"deadline": {"--sweep-batch=500", "--fire-concurrency=32"},
		// One load generator is one tenant creating and submitting thousands of orders a second: the
		// per-tenant rate limits would refuse it at once.
		"filing": {"--create-rate=0", "--update-rate=0", "--submit-rate=0"},
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
	sc := seedClients{
		sessions: func(i int64) verificationv1.VerificationInternalServiceClient {
			return verificationv1.NewVerificationInternalServiceClient(pick("verification", i))
		},
		timers: func(i int64) deadlinev1.DeadlineServiceClient {
			return deadlinev1.NewDeadlineServiceClient(pick("deadline", i))
		},
		orders: filingv1.NewFilingServiceClient(pick("filing", 0)),
	}
	var pop *population
	if o.on("verify") {
		var err error
		if pop, err = seed(ctx, o, fig, sink, db, sc, grpcPop); err != nil {
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

	// 5b. The same load through the real-protocol fakes, each on an sms-dispatch of its own.
	fakes := fakeRun{binDir: binDir, verificationAddr: s.Addrs["verification"], pool: pools["sms-dispatch"]}
	if err := fakes.phases(ctx, o, fig); err != nil {
		return err
	}

	// 6. Verify, with the default anti-timing floor and at saturation.
	var vr loadResult
	if o.on("verify") {
		var err error
		if vr, err = verifyPhases(ctx, o, fig, s, pop, pb, db, dbName, stmts, pick); err != nil {
			return err
		}
	}

	// 6b. Verify in steady state: both verifiers of an order checked close together, on a population of its own.
	var steadyRPS float64
	if o.on("verify_steady") {
		sp, err := seed(ctx, o, fig, sink, db, sc, steadyPop)
		if err != nil {
			return err
		}
		sp.pairUp(o.steadyWindow)
		if err := analyze(ctx, db); err != nil {
			return err
		}
		if steadyRPS, err = steadyPhase(ctx, o, fig, s, sp, pb, db, stmts, pick); err != nil {
			return err
		}
	}

	// 6c. Verify through the edge (REST/JSON), on a population of its own seeded as the gRPC one was.
	if o.on("rest") {
		rp, err := seed(ctx, o, fig, sink, db, sc, restPop)
		if err != nil {
			return err
		}
		if err := analyze(ctx, db); err != nil {
			return err
		}
		var grpcRPS float64 // verify_rps of this run, when the verify phase ran
		if o.on("verify") {
			grpcRPS = vr.rps()
		}
		if err := restPhase(ctx, o, fig, s, rp, grpcRPS); err != nil {
			return err
		}
	}

	// 7. SubmitOrder through to the messages handed to the provider.
	var orders []string
	if o.on("submit") {
		var err error
		stmts.begin(ctx)
		if orders, submitRPS, err = submit(ctx, o, fig, sink, func(i int64) filingv1.FilingServiceClient {
			return filingv1.NewFilingServiceClient(pick("filing", i))
		}, submitSet); err != nil {
			return err
		}
		stmts.end(ctx, "submit")
	}

	// 8. The deadline sweeper with 1M pending timers.
	var deadlineDue, riverDue float64
	if o.on("deadline") && !o.skipDeadline {
		if deadlineDue, err = deadlineRun(ctx, o, fig, db, stmts, orders, func(i int64) filingv1.FilingServiceClient {
			return filingv1.NewFilingServiceClient(pick("filing", i))
		}); err != nil {
			return err
		}
	}

	// 9. River on the deadline path: the same load, the same close call, a peer's scheduler.
	if o.on("river") {
		if riverDue, err = riverRun(ctx, o, fig, s, sink, db, func(i int64) filingv1.FilingServiceClient {
			return filingv1.NewFilingServiceClient(pick("filing", i))
		}); err != nil {
			return fmt.Errorf("river: %w", err)
		}
	}

	// Ratios, from figures of this run.
	ratio := func(name string, a, b float64) {
		if a > 0 && b > 0 {
			fig.add(name, a/b, "ratio")
		}
	}
	ratio("verify_vs_pgbench", vr.rps(), pgbenchTPS)
	ratio("verify_steady_vs_pgbench", steadyRPS, steadyTPS)
	ratio("verify_vs_noop", vr.rps(), noop.rps())
	ratio("submit_vs_pgbench", submitRPS, pgbenchTPS)
	ratio("deadline_vs_river", riverDue, deadlineDue) // > 1: ours is faster
	for _, name := range suite.Services {
		if !s.Procs[name].Running() {
			return fmt.Errorf("%s exited during the run:\n%s", name, s.Procs[name].Output())
		}
	}
	fig.add("bench_wall_seconds", time.Since(started).Seconds(), "s")
	return nil
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
	if o.pprof != "" {
		profileAt(o, pprofAddr, phase, d)
	}
}

// profileAt is profile of the process serving net/http/pprof on addr; the channel is closed once
// the profile is saved or failed (a process stopped before d is over has none).
func profileAt(o options, addr, phase string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(d.Seconds()))))
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
	return done
}

func under(s string) string { return strings.ReplaceAll(s, "-", "_") }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func redactArgs(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		for _, secret := range []string{"--hmac-keys=", "--seal-keys=", "--aliyun-access-key-secret=", "--cmpp-secret=", "--receipt-token="} {
			if strings.HasPrefix(a, secret) {
				a = secret + "<bench key>"
			}
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

var pgbenchTPS, submitRPS float64
