package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/grpc"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"

	"github.com/icpverify/icpverify/bench/internal/suite"
)

// The sms_aliyun and sms_cmpp phases send the sms phase's load through a provider's real protocol:
// each starts an sms-dispatch process of its own, on a database of its own, whose provider talks to
// a fake of the gateway in this process (services/sms-dispatch/providertest: the same fakes the
// provider and e2e tests use, which check every signature and login). sms_dispatch_per_s_<provider>
// is counted at the fake (messages it accepted / wall time from the first SendMessage);
// receipts_per_s_<provider> is every message's delivery receipt, pushed back once all are SENT, until
// all are DELIVERED in that sms-dispatch's database. receipts_per_s, once both phases ran, is the
// lower of the two: the figure issue 14 names (receipts must keep up with sends whichever gateway
// carries them).

// dispatchTarget is issue 14's target for every sms_dispatch_per_s figure on this machine, and the
// receipts': a receipt per message, so receipts that fall behind the sends pile up without end.
const dispatchTarget = 2000

// The fakes' accounts (bench values, no real account's).
const (
	benchAliyunKeyID    = "LTAI5tIcpBenchKey"
	benchAliyunSecret   = "Bk7Rq2Vx9Lm4Tz6Wc3Np8Hd5"
	benchSignName       = "ICP备案"
	benchTemplate       = "SMS_480012345"
	benchCMPPAccount    = "901234"
	benchCMPPSecret     = "Qx7Vb2Nm9Lk4Rw"
	benchReceiptToken   = "icpbench-receipt-token-5d8e1f"
	benchDispatchWorker = 64 // as the sms phase runs the webhook
)

// The pushes of the Aliyun receipts: SmsReport merges reports into one JSON array per POST, and
// several POSTs are in flight at once.
const (
	aliyunReportsPerPush = 100
	aliyunPushesInFlight = 8
)

// fakeRun is what the fake-gateway phases take from the run.
type fakeRun struct {
	binDir           string
	verificationAddr string // where each phase's sms-dispatch reports deliveries (the suite's verification)
	pool             int    // pool_max_conns, as the suite's sms-dispatch has
}

// gateway is a fake provider gateway as a phase drives it.
type gateway interface {
	// flags point sms-dispatch's provider at the fake, configured as an operator would for throughput.
	flags() []string
	accepted() int64
	// repeats is how many accepted messages were ones it had accepted already.
	repeats() int
	// sendReceipts starts the delivery receipt of every accepted message.
	sendReceipts() error
	close()
}

// phases runs the sms_aliyun and sms_cmpp phases that are on, and then receipts_per_s.
func (r fakeRun) phases(ctx context.Context, o options, fig *figures) error {
	var rates []float64
	for _, p := range []string{"sms_aliyun", "sms_cmpp"} {
		if !o.on(p) {
			continue
		}
		rate, err := r.phase(ctx, o, fig, p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		rates = append(rates, rate)
	}
	if len(rates) == 2 {
		// The lower of receipts_per_s_aliyun and receipts_per_s_cmpp: the figure issue 14 names.
		fig.add("receipts_per_s", slices.Min(rates), "receipts/s")
		fig.target("receipts_per_s", slices.Min(rates), dispatchTarget, "receipts/s")
	}
	return nil
}

// phase runs one fake-gateway phase and returns its receipts_per_s_<provider>.
func (r fakeRun) phase(ctx context.Context, o options, fig *figures, phase string) (float64, error) {
	var gw gateway
	var err error
	switch phase {
	case "sms_aliyun":
		gw, err = newAliyunGateway()
	case "sms_cmpp":
		gw = newCMPPGateway()
	}
	if err != nil {
		return 0, err
	}
	defer gw.close()
	name := phase[len("sms_"):]
	d, err := r.start(ctx, o, phase, gw.flags())
	if err != nil {
		return 0, err
	}
	defer d.stop()
	logf("SMS dispatch through the %s fake: %d SendMessage calls (%d at once) to %s, counted at the fake",
		name, o.smsMessages, o.smsClients, d.proc.Name)
	if d.pprofAddr != "" {
		profiled := profileAt(o, d.pprofAddr, phase, 10*time.Second)
		defer func() { <-profiled }() // before d.stop: the profile needs the process
	}
	stmts := newStatements(ctx, d.db, o.root)
	stmts.begin(ctx)
	defer stmts.end(ctx, phase)
	n := int64(o.smsMessages)
	cpu0 := d.cpu()
	start := time.Now()
	if err := sendSMSLoad(ctx, o, func(i int64) smsv1.SmsDispatchServiceClient {
		return smsv1.NewSmsDispatchServiceClient(d.conns[int(i)%len(d.conns)])
	}); err != nil {
		return 0, err
	}
	sent := time.Since(start)
	if err := waitFor(func() (int64, error) { return gw.accepted(), nil }, n, 5*time.Minute, d.proc.Running); err != nil {
		return 0, fmt.Errorf("the fake accepted: %w\n%s", err, d.proc.Output())
	}
	all := time.Since(start)
	cpu1 := d.cpu()
	perS := float64(n) / all.Seconds()
	fig.add("sms_send_rpc_rps_"+name, float64(n)/sent.Seconds(), "rps")
	fig.add("sms_dispatch_per_s_"+name, perS, "msg/s")
	fig.target("sms_dispatch_per_s_"+name, perS, dispatchTarget, "msg/s")
	fig.add("sms_gateway_repeats_"+name, float64(gw.repeats()), "msgs")
	if c, ok := gw.(*cmppGateway); ok {
		fig.add("sms_cmpp_max_unacked", float64(c.f.MaxUnacked()), "submits")
	}
	addCores(fig, "sms_"+name, cpu0, cpu1, all)

	// Receipts, once every message is SENT: the time is the receipts' alone.
	if err := waitFor(func() (int64, error) { return d.count(ctx, "SENT", "DELIVERED") }, n, 5*time.Minute, d.proc.Running); err != nil {
		return 0, fmt.Errorf("messages SENT: %w\n%s", err, d.proc.Output())
	}
	cpu0 = d.cpu()
	start = time.Now()
	if err := gw.sendReceipts(); err != nil {
		return 0, fmt.Errorf("receipts: %w", err)
	}
	if err := waitFor(func() (int64, error) { return d.count(ctx, "DELIVERED") }, n, 5*time.Minute, d.proc.Running); err != nil {
		return 0, fmt.Errorf("messages DELIVERED: %w\n%s", err, d.proc.Output())
	}
	took := time.Since(start)
	rate := float64(n) / took.Seconds()
	fig.add("receipts_per_s_"+name, rate, "receipts/s")
	fig.target("receipts_per_s_"+name, rate, dispatchTarget, "receipts/s")
	addCores(fig, "receipts_"+name, cpu0, d.cpu(), took)
	return rate, nil
}

// phaseDispatch is a phase's own sms-dispatch process with its database.
type phaseDispatch struct {
	proc      *suite.Proc
	db        *pgxpool.Pool // the phase database, for the bench's own counts
	conns     []*grpc.ClientConn
	pprofAddr string // its net/http/pprof, with --pprof=sms-dispatch
	stop      func()
}

// start creates the phase's database and starts sms-dispatch on it with providerFlags, the caps off
// and the flags --service-flag gives sms-dispatch, reporting to the suite's verification.
func (r fakeRun) start(ctx context.Context, o options, phase string, providerFlags []string) (*phaseDispatch, error) {
	dbName, dbURL, err := suite.CreateDatabase(ctx, o.adminURL, "icpbench_"+phase)
	if err != nil {
		return nil, err
	}
	d := &phaseDispatch{}
	var cleanups []func()
	d.stop = func() {
		for i := len(cleanups) - 1; i >= 0; i-- {
			cleanups[i]()
		}
	}
	if !o.keep {
		cleanups = append(cleanups, func() { _ = suite.DropDatabase(context.Background(), o.adminURL, dbName) })
	}
	fail := func(err error) (*phaseDispatch, error) { d.stop(); return nil, err }
	addr, err := suite.FreeAddr()
	if err != nil {
		return fail(err)
	}
	svcURL := dbURL
	if len(o.dbParams) > 0 {
		svcURL = suite.WithParams(dbURL, o.dbParams...)
	}
	args := append([]string{"--grpc-addr=" + addr, "--database-url=" + suite.WithParams(svcURL, fmt.Sprintf("pool_max_conns=%d", r.pool)),
		"--log-level=warn", "--insecure-dev", "--seal-keys=" + suite.SealKeys, "--verification-addr=" + r.verificationAddr,
		"--rate-per-minute=0", "--rate-per-hour=0", "--rate-per-day=0", fmt.Sprintf("--dispatch-workers=%d", benchDispatchWorker)},
		providerFlags...)
	args = append(args, o.extra["sms-dispatch"]...)
	var env []string
	if o.pprof == "sms-dispatch" { // the binary is pprofservice: it profiles this process, not the suite's
		if d.pprofAddr, err = suite.FreeAddr(); err != nil {
			return fail(err)
		}
		env = []string{"PPROF_ADDR=" + d.pprofAddr, "PPROF_SERVICE=sms-dispatch"}
	}
	d.proc = &suite.Proc{Name: "sms-dispatch#" + phase, Bin: filepath.Join(r.binDir, "sms-dispatch"), Addr: addr, Args: args, Env: env}
	if err := d.proc.Start(); err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, func() { d.proc.Stop(20 * time.Second) })
	logf("%s: %s", d.proc.Name, strings.Join(redactArgs(args), " "))
	if err := d.proc.WaitHealthy(60 * time.Second); err != nil {
		return fail(err)
	}
	if d.db, err = pgxpool.New(ctx, suite.WithParams(dbURL, "pool_max_conns=2")); err != nil {
		return fail(err)
	}
	cleanups = append(cleanups, d.db.Close)
	for range o.conns {
		c, err := suite.Dial(addr)
		if err != nil {
			return fail(err)
		}
		cleanups = append(cleanups, func() { _ = c.Close() })
		d.conns = append(d.conns, c)
	}
	return d, nil
}

// count is how many of the phase's messages are in one of states.
func (d *phaseDispatch) count(ctx context.Context, states ...string) (int64, error) {
	var n int64
	err := d.db.QueryRow(ctx, `SELECT count(*) FROM sms_dispatch.messages WHERE state = ANY($1)`, states).Scan(&n)
	return n, err
}

// cpu is the CPU seconds used so far by PostgreSQL, the phase's sms-dispatch and this process
// (the load generator and the fake gateway).
func (d *phaseDispatch) cpu() map[string]float64 {
	m := map[string]float64{"postgres": suite.PostgresCPUSeconds()}
	m["sms_dispatch"], _ = suite.CPUSeconds(d.proc.PID())
	m["loadgen_and_fake"], _ = suite.CPUSeconds(os.Getpid())
	return m
}

// addCores adds <prefix>_cpu_cores_<process> for the CPU each process of a cpu snapshot used over d.
func addCores(fig *figures, prefix string, a, b map[string]float64, d time.Duration) {
	for _, k := range []string{"postgres", "sms_dispatch", "loadgen_and_fake"} {
		fig.add(prefix+"_cpu_cores_"+k, (b[k]-a[k])/d.Seconds(), "cores")
	}
}

// waitFor polls count until it reaches n; it fails when limit passes first or alive turns false
// (the process that should get there is gone).
func waitFor(count func() (int64, error), n int64, limit time.Duration, alive func() bool) error {
	end := time.Now().Add(limit)
	for {
		got, err := count()
		switch {
		case err != nil:
			return err
		case got >= n:
			return nil
		case !alive():
			return fmt.Errorf("%d of %d, and the process exited", got, n)
		case time.Now().After(end):
			return fmt.Errorf("%d of %d after %s", got, n, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// repeats is how many of ids are ones seen earlier in the list.
func repeats(ids []string) int {
	seen := make(map[string]bool, len(ids))
	n := 0
	for _, id := range ids {
		if seen[id] {
			n++
		}
		seen[id] = true
	}
	return n
}

// aliyunGateway is the fake dysmsapi; receipts are SmsReport pushes to sms-dispatch's endpoint.
type aliyunGateway struct {
	f           *providertest.Aliyun
	receiptAddr string
}

func newAliyunGateway() (*aliyunGateway, error) {
	addr, err := suite.FreeAddr()
	if err != nil {
		return nil, err
	}
	return &aliyunGateway{f: providertest.NewAliyun(benchAliyunKeyID, benchAliyunSecret, benchSignName, benchTemplate, "code", "time"),
		receiptAddr: addr}, nil
}

func (g *aliyunGateway) flags() []string {
	return []string{"--sms-provider=aliyun", "--aliyun-endpoint=" + g.f.URL(), "--aliyun-access-key-id=" + benchAliyunKeyID,
		"--aliyun-access-key-secret=" + benchAliyunSecret, "--aliyun-sign-name=" + benchSignName,
		"--aliyun-template-code=" + benchTemplate, "--aliyun-template-params=code=code,time=deadline",
		"--receipt-addr=" + g.receiptAddr, "--receipt-token=" + benchReceiptToken}
}

func (g *aliyunGateway) accepted() int64 { return int64(g.f.AcceptedCount()) }

func (g *aliyunGateway) repeats() int {
	var ids []string
	for _, a := range g.f.Accepted() {
		ids = append(ids, a.MessageID)
	}
	return repeats(ids)
}

func (g *aliyunGateway) sendReceipts() error {
	var reports []providertest.AliyunReport
	for _, a := range g.f.Accepted() {
		reports = append(reports, a.AliyunReport(true, ""))
	}
	return pushReports("http://"+g.receiptAddr+"/receipts/aliyun/"+benchReceiptToken, reports, aliyunReportsPerPush, aliyunPushesInFlight)
}

func (g *aliyunGateway) close() { g.f.Close() }

// pushReports posts reports to url as SmsReport does, perPush in each POST, inFlight POSTs at once.
func pushReports(url string, reports []providertest.AliyunReport, perPush, inFlight int) error {
	chunks := make(chan []providertest.AliyunReport)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range inFlight {
		wg.Go(func() {
			for c := range chunks {
				if err := providertest.PushAliyun(url, c...); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	for i := 0; i < len(reports); i += perPush {
		chunks <- reports[i:min(i+perPush, len(reports))]
	}
	close(chunks)
	wg.Wait()
	return errors.Join(errs...)
}

// cmppGateway is the fake ISMG; its status reports are held while the messages go out and
// released, one DELIVER each, on the links they came by.
type cmppGateway struct{ f *providertest.CMPP }

func newCMPPGateway() *cmppGateway {
	f := providertest.NewCMPP(benchCMPPAccount, benchCMPPSecret)
	f.HoldReports()
	return &cmppGateway{f: f}
}

// flags: links × window cover the dispatch workers' sends in flight (4 × 16 = 64), the window
// the 16 of the CMPP 3.0 specification's recommendation.
func (g *cmppGateway) flags() []string {
	return []string{"--sms-provider=cmpp", "--cmpp-addr=" + g.f.Addr(), "--cmpp-source-addr=" + benchCMPPAccount,
		"--cmpp-secret=" + benchCMPPSecret, "--cmpp-src-id=10690001", "--cmpp-service-id=ICPSMS",
		"--cmpp-conns=4", "--cmpp-window=16"}
}

func (g *cmppGateway) accepted() int64 { return int64(g.f.AcceptedCount()) }

// repeats: every message of the load has a phone of its own.
func (g *cmppGateway) repeats() int {
	var phones []string
	for _, m := range g.f.Messages() {
		phones = append(phones, m.Phone)
	}
	return repeats(phones)
}

func (g *cmppGateway) sendReceipts() error {
	go g.f.ReleaseReports(false, false)
	return nil
}

func (g *cmppGateway) close() { g.f.Close() }
