// Package server wires sms-dispatch together: flags, logger, storage (PostgreSQL, or memory with
// --store=memory), provider, dispatcher, the gRPC service and the outbox relay that delivers the
// reports of failed messages to verification. Run is exported so a one-process development server
// can start every service.
package server

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/config"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/service"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/convert"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/grpcapi"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/receipts"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/memstore"
)

// engine is what the handlers and the dispatcher need; both storage engines implement it.
type engine interface {
	grpcapi.Store
	dispatcher.Store
	receipts.Recorder
	SetRedelivery(r domain.Redelivery)
}

// options are the service's own flags.
type options struct {
	Provider        string
	WebhookURL      string
	WebhookTimeout  time.Duration
	WebhookToken    string
	WebhookBatchURL string
	WebhookBatchMax int
	// WebhookBatchFlights is how many batch POSTs may be in flight at once.
	WebhookBatchFlights int
	Sender              string
	Signature           string
	MaxAttempts         int
	Caps                domain.Caps
	DispatchWorkers     int
	Lease               time.Duration
	Cloud               cloudOptions
	CMPP                cmppOptions
	Receipts            receiptOptions
	Failover            failoverOptions
}

// Run parses args, starts the service and serves until ctx ends.
func Run(ctx context.Context, args []string) error {
	f := config.NewFlags("sms-dispatch")
	common := config.RegisterCommon(f, config.DefaultSMSDispatchAddr, "sms_dispatch")
	sec := config.RegisterSecurity(f, config.Peers)
	verificationAddr := f.String("verification-addr", config.DefaultVerificationAddr,
		"verification service address (ReportDelivery: the codes whose message failed are voided there)")
	prov := f.String("sms-provider", "console",
		"SMS provider: console (development only: prints the text, sends nothing), webhook, aliyun, tencent or cmpp")
	cloud := registerCloud(f)
	cmppOpts := registerCMPP(f)
	receiptOpts := registerReceipts(f)
	failover := registerFailover(f)
	webhookURL := f.String("webhook-url", "", "webhook provider: the gateway URL messages are POSTed to")
	webhookTimeout := f.Duration("webhook-timeout", 5*time.Second, "webhook provider: timeout of one POST")
	webhookToken := f.String("webhook-token", "", "webhook provider: optional bearer token (sent as Authorization: Bearer <token>; never logged)")
	webhookBatchURL := f.String("webhook-batch-url", "",
		"webhook provider: the gateway's batch URL; when set, concurrent sends go together in one POST there instead of one POST each")
	webhookBatchMax := f.Int("webhook-batch-max", provider.DefaultBatchMax, "webhook provider: messages per batch POST at most")
	webhookBatchFlights := f.Int("webhook-batch-flights", 4,
		"webhook provider: batch POSTs in flight at once; sends that arrive meanwhile go together in the next one")
	sender := f.String("sms-sender", "12381", "sender number handed to the provider")
	signature := f.String("sms-signature", domain.DefaultSignature, "signature shown as 【signature】 at the start of zh-CN texts")
	maxAttempts := f.Int("max-attempts", 10, "provider calls per message before it FAILS")
	perMinute := f.Int("rate-per-minute", domain.DefaultCaps.PerMinute, "per-phone cap: messages per minute (0: no cap)")
	perHour := f.Int("rate-per-hour", domain.DefaultCaps.PerHour, "per-phone cap: messages per hour (0: no cap)")
	perDay := f.Int("rate-per-day", domain.DefaultCaps.PerDay, "per-phone cap: messages per 24 hours (0: no cap)")
	workers := f.Int("dispatch-workers", 8, "messages this replica sends at once")
	sealKeys := service.RegisterSealKeys(f, "the texts of the queued messages (body and params: the code)")
	lease := f.Duration("dispatch-lease", 30*time.Second,
		"how long a claimed message is hidden from other replicas; after a crash it is sent again (same message id) once this passes")
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(common.Check(), sec.Check()); err != nil {
		return err
	}
	opts := options{
		Provider: *prov, WebhookURL: *webhookURL, WebhookTimeout: *webhookTimeout, WebhookToken: *webhookToken,
		WebhookBatchURL: *webhookBatchURL, WebhookBatchMax: *webhookBatchMax, WebhookBatchFlights: *webhookBatchFlights,
		Sender: *sender, Signature: *signature, MaxAttempts: *maxAttempts,
		Caps:            domain.Caps{PerMinute: *perMinute, PerHour: *perHour, PerDay: *perDay},
		DispatchWorkers: *workers, Lease: *lease, Cloud: cloud(), CMPP: cmppOpts(), Receipts: receiptOpts(sec),
		Failover: failover(),
	}
	if err := errors.Join(opts.checkAll(), sealKeys.Check(common)); err != nil {
		return err
	}

	base, err := service.Start("sms-dispatch", common, sec, append(opts.openDefaultsAll(), sealKeys.OpenDefaults()...))
	if err != nil {
		return err
	}
	defer base.Close()
	log, obs, srv, peers := base.Log, base.Obs, base.Server, base.Peers

	list, sendTimeout := opts.providers()
	sms := list[0]
	// Development mode: the console provider prints every text anyway, so the API may show it too.
	dev := opts.development()
	if dev {
		log.Warn("the console SMS provider is for development only: it prints each text, codes included, to stdout, " +
			"sends nothing, and GetMessage/ListMessages show the texts")
	}

	verificationConn, err := peers.Dial(*verificationAddr)
	if err != nil {
		return err
	}
	defer verificationConn.Close()
	verification := verificationv1.NewVerificationInternalServiceClient(verificationConn)

	clk := clock.Real{}
	relay := &outbox.Relay{
		Observer: obs,
		Log:      log.Named("outbox"),
		Clock:    clk,
		Linger:   outbox.DefaultLinger,
		Handlers: map[string]outbox.Handler{convert.TargetReportDelivery: outbox.Call(verification.ReportDelivery)},
	}
	var st engine
	if common.Memory() {
		// Memory keeps the texts in this process only, so there is nothing at rest to seal; the
		// flag is still checked, as on PostgreSQL.
		ms := memstore.New(clk)
		ms.Wake, relay.Queue = relay.Wake, ms.Outbox()
		st = ms
	} else {
		keys, err := sealKeys.Keyring(log)
		if err != nil {
			return err
		}
		pool, err := base.Postgres(ctx, store.Migrations, outbox.Migrations)
		if err != nil {
			return err
		}
		defer pool.Close()
		// The outbox holds delivery reports only (message and order ids): nothing to seal.
		ps := store.New(pool, clk, keys)
		ps.Wake, relay.Queue = relay.Wake, outbox.PGQueue{Pool: pool}
		st = ps
	}

	st.SetRedelivery(opts.redelivery())
	names := opts.names()
	disp := &dispatcher.Dispatcher{
		Store: st, Provider: sms, Providers: list, Clock: clk, Log: log.Named("dispatcher"), Caps: opts.Caps, Sender: opts.Sender,
		MaxAttempts: opts.MaxAttempts, Workers: opts.DispatchWorkers, BatchFlights: opts.WebhookBatchFlights,
		SendTimeout: sendTimeout, Lease: opts.Lease, KeepText: dev, AtRiskAfter: opts.Receipts.Timeout,
		Metrics:         dispatcher.NewMetrics(obs.Registry, names...),
		BreakerFailures: opts.Failover.BreakerFailures, BreakerCooldown: opts.Failover.BreakerCooldown,
	}
	grpcapi.Register(srv.Public(), srv.Internal(), &grpcapi.Server{
		Store: st, Clock: clk, Log: log, Signature: opts.Signature, Dispatcher: disp, ShowText: dev,
	})
	for _, p := range list {
		if c, ok := p.(*provider.CMPP); ok {
			// Status reports come on the links: they go to the one receipt use case.
			c.Receipts, c.Counter, c.Clock, c.Log = st, disp.Metrics, clk, log.Named("cmpp")
			defer func() { _ = c.Close() }()
		}
	}
	srv.Go("dispatcher", disp.Run)
	srv.Go("outbox", relay.Run)
	if opts.Receipts.Addr != "" {
		serve, err := serveReceipts(ctx, log, opts.Receipts, &receipts.Handler{Store: st, Token: opts.Receipts.Token, Clock: clk,
			Log: log.Named("receipts"), Metrics: disp.Metrics})
		if err != nil {
			return err
		}
		srv.Go("receipts", serve)
	}
	_, batched := sms.(provider.BatchProvider)
	log.Info("sms-dispatch starting", zap.String("addr", *common.GRPCAddr), zap.Strings("providers", names),
		zap.Bool("provider_batch", batched), zap.String("store", *common.Store), zap.Int("dispatch_workers", opts.DispatchWorkers),
		zap.Int("max_attempts", opts.MaxAttempts), zap.Int("redeliver_tries", opts.redelivery().Tries), zap.Int("rate_per_minute", opts.Caps.PerMinute),
		zap.Int("rate_per_hour", opts.Caps.PerHour), zap.Int("rate_per_day", opts.Caps.PerDay),
		zap.String("verification_addr", *verificationAddr))
	return base.Serve(ctx)
}

func (o options) check() error {
	var problems []error
	if err := domain.CheckSignature(o.Signature); err != nil {
		problems = append(problems, err)
	}
	switch o.Provider {
	case "console":
	case "webhook":
		if !httpURL(o.WebhookURL) {
			problems = append(problems, errors.New("--webhook-url (or WEBHOOK_URL) must be an http(s) URL with --sms-provider=webhook"))
		}
		if o.WebhookTimeout <= 0 {
			problems = append(problems, errors.New("--webhook-timeout must be positive"))
		}
		if o.WebhookBatchURL != "" && !httpURL(o.WebhookBatchURL) {
			problems = append(problems, errors.New("--webhook-batch-url (or WEBHOOK_BATCH_URL) must be an http(s) URL"))
		}
		if o.WebhookBatchURL != "" && o.WebhookBatchFlights < 1 {
			problems = append(problems, errors.New("--webhook-batch-flights must be at least 1"))
		}
		if o.WebhookBatchMax < 1 {
			problems = append(problems, errors.New("--webhook-batch-max must be at least 1"))
		}
	case "aliyun":
		problems = append(problems, o.Cloud.checkAliyun()...)
	case "tencent":
		problems = append(problems, o.Cloud.checkTencent()...)
	case "cmpp":
		problems = append(problems, o.CMPP.check()...)
	default:
		problems = append(problems, fmt.Errorf("--sms-provider %q: use console, webhook, aliyun, tencent or cmpp", o.Provider))
	}
	// The lease must outlast a provider call, or a slow send would be claimed again by another replica.
	if _, sendTimeout := o.provider(); o.Lease <= sendTimeout {
		problems = append(problems, fmt.Errorf("--dispatch-lease must be longer than one provider call (%s)", sendTimeout))
	}
	problems = append(problems, o.Receipts.check()...)
	if o.MaxAttempts < 1 {
		problems = append(problems, errors.New("--max-attempts must be at least 1"))
	}
	if o.DispatchWorkers < 1 {
		problems = append(problems, errors.New("--dispatch-workers must be at least 1"))
	}
	if o.Caps.PerMinute < 0 || o.Caps.PerHour < 0 || o.Caps.PerDay < 0 {
		problems = append(problems, errors.New("--rate-per-minute, --rate-per-hour and --rate-per-day must not be negative"))
	}
	if o.Sender == "" {
		problems = append(problems, errors.New("--sms-sender must not be empty"))
	}
	return errors.Join(problems...)
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return s != "" && err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// provider builds the configured provider and the time one provider call (Send, or SendBatch) may take.
func (o options) provider() (provider.Provider, time.Duration) {
	switch o.Provider {
	case "aliyun":
		return o.Cloud.aliyun(o.DispatchWorkers), o.Cloud.Timeout + time.Second
	case "tencent":
		return o.Cloud.tencent(o.DispatchWorkers), o.Cloud.Timeout + time.Second
	case "cmpp":
		return o.CMPP.cmpp()
	}
	if o.Provider == "webhook" {
		// One idle connection per worker: each worker has at most one request in flight.
		w := provider.NewWebhookConns(o.WebhookURL, o.WebhookToken, o.WebhookTimeout, o.DispatchWorkers)
		if o.WebhookBatchURL != "" {
			return w.WithBatch(o.WebhookBatchURL, o.WebhookBatchMax), o.WebhookTimeout + time.Second
		}
		return w, o.WebhookTimeout + time.Second
	}
	return provider.NewConsole(os.Stdout), 5 * time.Second
}

// smsOpenDefaults: the console provider prints every code to stdout and keeps and shows the texts;
// a placeholder webhook token or cloud secret is known to anyone who read the example.
func smsOpenDefaults(o options) []config.OpenDefault {
	var open []config.OpenDefault
	if o.Provider == "console" {
		open = append(open, config.OpenDefault{Flag: "--sms-provider=webhook", What: "the console SMS provider prints every code"})
	}
	if o.WebhookToken != "" && config.IsPlaceholder(o.WebhookToken) {
		open = append(open, config.OpenDefault{Flag: "--webhook-token", What: "the webhook token is a placeholder"})
	}
	if o.Provider == "cmpp" && config.IsPlaceholder(o.CMPP.Secret) {
		open = append(open, config.OpenDefault{Flag: "--cmpp-secret", What: "the CMPP login secret is a placeholder"})
	}
	open = append(open, o.Receipts.openDefaults()...)
	return append(open, o.Cloud.openDefaults(o.Provider)...)
}
