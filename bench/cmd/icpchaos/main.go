// Command icpchaos runs fault drills against the four services as processes on PostgreSQL
// (bench/internal/suite): SIGKILL of each service in turn during a stream of orders, a PostgreSQL
// restart under load, two deadline replicas under a burst of expiries, SIGTERM under load, and the
// primary SMS provider's gateway killed under load (sms-failover: failover to the next provider).
// Each drill runs on a fresh database for a bounded time and prints
//
//	drill <name> orders=<n> lost=<n> duplicated=<n> failed_rpcs=<n> recovery_s=<x>
//
// Lost: an order whose expected end state never arrives (not UNDER_REVIEW after both verifiers
// passed, a verifier without a code, a submitted order without session or deadline; in the expiry
// drill: not RETURNED once its window closed). Duplicated: a message id delivered with two codes, a
// verifier with two message ids (the drills never resend), two UNDER_REVIEW/RETURNED transitions,
// a deadline that fired for a passed order, or a return before the deadline. The exit status is 1
// when a drill lost or duplicated anything, or when the SIGTERM drill saw a failed RPC.
//
//	go run ./bench/cmd/icpchaos                     # all drills, about 3 minutes
//	go run ./bench/cmd/icpchaos --drills=kill,sigterm
//	go run ./bench/cmd/icpchaos --drills=sms-failover  # no PostgreSQL restart
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

var runID = time.Now().Unix() % 100000

type options struct {
	drills   []string
	clients  int
	burst    int
	root     string
	adminURL string
	keep     bool
	binDir   string
	sink     *suite.Sink
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
}

func main() {
	var o options
	drills := flag.String("drills", "kill,postgres,deadline,sigterm,pg-failover,pg-failover-async,sms-failover",
		"drills to run, comma-separated: kill, postgres, deadline, sigterm, pg-failover, pg-failover-async, sms-failover")
	flag.IntVar(&o.clients, "clients", 3, "concurrent clients driving orders")
	flag.IntVar(&o.burst, "burst", 300, "orders expiring together in the deadline drill")
	flag.StringVar(&o.root, "root", "", "workspace root (default: found via go.work)")
	flag.StringVar(&o.adminURL, "database-url", suite.AdminURL(), "PostgreSQL server to create the drill databases on")
	flag.BoolVar(&o.keep, "keep", false, "keep the databases afterwards")
	flag.Parse()
	o.drills = strings.Split(*drills, ",")
	if o.root == "" {
		o.root = suite.FindRoot()
	}
	ok, err := run(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "icpchaos:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

func run(o options) (bool, error) {
	binDir, err := os.MkdirTemp("", "icpchaos-bin")
	if err != nil {
		return false, err
	}
	defer os.RemoveAll(binDir)
	logf("building the services")
	if err := suite.Build(o.root, binDir); err != nil {
		return false, fmt.Errorf("build: %w", err)
	}
	o.binDir = binDir
	if o.sink, err = suite.NewSink(); err != nil {
		return false, err
	}
	defer o.sink.Close()
	all := true
	for _, name := range o.drills {
		var r result
		var err error
		switch strings.TrimSpace(name) {
		case "kill":
			r, err = drillKill(o)
		case "postgres":
			r, err = drillPostgres(o)
		case "deadline":
			r, err = drillDeadline(o)
		case "sigterm":
			r, err = drillSigterm(o)
		case "pg-failover":
			r, err = drillPGFailover(o, true)
		case "pg-failover-async":
			r, err = drillPGFailover(o, false)
		case "sms-failover":
			r, err = drillSMSFailover(o)
		default:
			return false, fmt.Errorf("unknown drill %q", name)
		}
		if err != nil {
			fmt.Printf("drill %s error: %v\n", name, err)
			all = false
			continue
		}
		fmt.Println(r.line())
		if !r.ok() {
			all = false
		}
	}
	return all, nil
}

// result is one drill's figures.
type result struct {
	name                 string
	orders, lost, dup    int
	ackedLost            int // RPCs that answered OK whose effect is not in the database afterwards
	failedRPCs           int64
	recovery             float64
	extra                string
	failedRPCsMustBeZero bool
	recoveryLimit        float64 // seconds; 0: none
	informational        bool    // the figures are reported and never fail the run (pg-failover-async)
}

func (r result) line() string {
	s := fmt.Sprintf("drill %s orders=%d lost=%d duplicated=%d acked_lost=%d failed_rpcs=%d recovery_s=%.2f",
		r.name, r.orders, r.lost, r.dup, r.ackedLost, r.failedRPCs, r.recovery)
	if r.extra != "" {
		s += " " + r.extra
	}
	return s
}

func (r result) ok() bool {
	if r.informational {
		return r.orders > 0
	}
	return r.lost == 0 && r.ackedLost == 0 && r.dup == 0 && r.orders > 0 && (!r.failedRPCsMustBeZero || r.failedRPCs == 0) &&
		(r.recoveryLimit == 0 || r.recovery <= r.recoveryLimit)
}

// env is one drill's database, suite and clients.
type env struct {
	o        options
	adminURL string // the server the database was created on (dropped there at the end)
	dbName   string
	db       *pgxpool.Pool
	s        *suite.Suite
	filing   *balanced
	verif    *balanced
}

// startEnv creates a database and starts the four services with drill-friendly flags plus extra.
func startEnv(o options, extra map[string][]string) (*env, error) {
	return startEnvOn(o, o.adminURL, nil, extra)
}

// startEnvOn creates the database on the server of adminURL; the services and the checks connect to
// it with urlFor(database name) when given (a multi-host URL), else with its URL on that server.
func startEnvOn(o options, adminURL string, urlFor func(db string) string, extra map[string][]string) (*env, error) {
	ctx := context.Background()
	name, url, err := suite.CreateDatabase(ctx, adminURL, "icpchaos")
	if err != nil {
		return nil, err
	}
	if urlFor != nil {
		url = urlFor(name)
	}
	e := &env{o: o, adminURL: adminURL, dbName: name}
	flags := map[string][]string{
		"verification": {"--min-response-time=0", "--verify-rate=0", "--resend-rate=0", "--shutdown-timeout=10s"},
		// a short lease so a message claimed by a killed replica is sent again within the drill
		"sms-dispatch": {"--rate-per-minute=0", "--rate-per-hour=0", "--rate-per-day=0", "--webhook-timeout=1s", "--dispatch-lease=3s", "--shutdown-timeout=10s"},
		"deadline":     {"--lease=5s", "--shutdown-timeout=10s"},
		"filing":       {"--shutdown-timeout=10s", "--create-rate=0", "--update-rate=0", "--submit-rate=0"}, // one driver, one tenant
	}
	for k, v := range extra {
		flags[k] = append(flags[k], v...)
	}
	e.s, err = suite.Start(suite.Config{BinDir: o.binDir, DatabaseURL: url, WebhookURL: o.sink.URL, Extra: flags,
		PoolMaxConns: map[string]int{"filing": 4, "verification": 4, "sms-dispatch": 4, "deadline": 4}})
	if err != nil {
		e.close()
		return nil, err
	}
	if e.db, err = pgxpool.New(ctx, suite.WithParams(url, "pool_max_conns=2")); err != nil {
		e.close()
		return nil, err
	}
	if e.filing, err = dialBalanced(e.s.Addrs["filing"]); err != nil {
		e.close()
		return nil, err
	}
	if e.verif, err = dialBalanced(e.s.Addrs["verification"]); err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) driver(retry, verify bool) *driver {
	return newDriver(filingv1.NewFilingServiceClient(e.filing.conn), verificationv1.NewVerificationServiceClient(e.verif.conn), e.o.sink, retry, verify)
}

func (e *env) close() {
	if e.filing != nil {
		e.filing.conn.Close()
	}
	if e.verif != nil {
		e.verif.conn.Close()
	}
	if e.s != nil {
		for k, p := range e.s.Procs {
			if !p.Running() && k != "" {
				logf("%s had exited; its last output:\n%s", k, tailStr(p.Output(), 1500))
			}
		}
		e.s.StopAll()
	}
	if e.db != nil {
		e.db.Close()
	}
	if !e.o.keep {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := suite.DropDatabase(ctx, e.adminURL, e.dbName); err != nil {
			logf("drop database %s: %v", e.dbName, err)
		}
	}
}

func tailStr(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// pgRestart restarts the local PostgreSQL 15 cluster (root-managed).
func pgRestart(action string) error {
	vers, err := os.ReadDir("/etc/postgresql")
	if err != nil || len(vers) == 0 {
		return fmt.Errorf("no cluster under /etc/postgresql: %v", err)
	}
	out, err := exec.Command("pg_ctlcluster", "--skip-systemctl-redirect", vers[0].Name(), "main", action).CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctlcluster %s: %v: %s", action, err, out)
	}
	return nil
}

// pgUp makes sure PostgreSQL answers; it starts the cluster when it does not.
func pgUp(adminURL string) {
	ping := func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		p, err := pgxpool.New(ctx, adminURL)
		if err != nil {
			return false
		}
		defer p.Close()
		return p.Ping(ctx) == nil
	}
	if ping() {
		return
	}
	logf("PostgreSQL does not answer; starting the cluster")
	if err := pgRestart("start"); err != nil {
		logf("%v", err)
	}
	for range 50 {
		if ping() {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}
