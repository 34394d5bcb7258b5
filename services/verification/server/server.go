// Package server wires the verification service: flags, logger, storage engine (PostgreSQL, or memory
// for the one-process development server), HMAC keys, store, gRPC handlers and the outbox relay that
// delivers SMS requests, filing verdicts and deadline cancels.
// Run is exported so a one-process dev server can start every service in one binary.
package server

import (
	"context"
	"errors"
	"fmt"
	"time"
	_ "time/tzdata" // Asia/Shanghai for the noon resend, also in images without zoneinfo (distroless, scratch)

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/config"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/keyspec"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/service"
	"github.com/icpverify/icpverify/services/verification/internal/app"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
	"github.com/icpverify/icpverify/services/verification/internal/grpcapi"
	"github.com/icpverify/icpverify/services/verification/internal/store"
	"github.com/icpverify/icpverify/services/verification/internal/store/memstore"
)

// Run parses args, serves until ctx ends and returns after a graceful shutdown.
func Run(ctx context.Context, args []string) error {
	f := config.NewFlags("verification")
	common := config.RegisterCommon(f, config.DefaultVerificationAddr, "verification")
	sec := config.RegisterSecurity(f, config.PublicAPI|config.Peers)
	smsAddr := f.String("sms-dispatch-addr", config.DefaultSMSDispatchAddr, "sms-dispatch service address")
	filingAddr := f.String("filing-addr", config.DefaultFilingAddr, "filing service address")
	deadlineAddr := f.String("deadline-addr", config.DefaultDeadlineAddr, "deadline service address")
	hmacKeys := f.String("hmac-keys", "", `HMAC keys for codes and ID tails: "kid:hexkey[,kid:hexkey...]", at least 32 bytes each; `+
		`the first signs, all verify (rotation). Required with --store=postgres; with --store=memory empty means a random key`)
	sealKeys := service.RegisterSealKeys(f, "the SendMessage calls (which carry the code) while they wait in the outbox")
	minResponse := f.Duration("min-response-time", 150*time.Millisecond, "public Verify and ResendCode answer no earlier than this "+
		"after the request arrived, so the response time does not tell whether a phone has a pending verification; 0 disables")
	maxFailed := f.Int("max-failed-attempts", domain.DefaultLimits.MaxFailedAttempts, "consecutive wrong entries that lock a verifier and return the order")
	maxResends := f.Int("max-resends", domain.DefaultLimits.MaxResends, "new codes a verifier may request per window")
	resendInterval := f.Duration("resend-interval", domain.DefaultLimits.ResendInterval, "minimum time between two codes sent to one verifier")
	phoneBudget := f.Int("phone-failure-budget", domain.DefaultLimits.PhoneFailureBudget, "failed checks per phone, across all "+
		"orders and tenants, within --phone-failure-window that lock every pending verification of the phone, return the orders "+
		"and refuse new codes for it for one window")
	phoneWindow := f.Duration("phone-failure-window", domain.DefaultLimits.PhoneFailureWindow, "the rolling window of "+
		"--phone-failure-budget, and how long a phone stays locked once its budget is spent")
	maxMismatched := f.Int("max-mismatched-phones-per-caller", 20, "distinct phones a caller's (API key's, JWT subject's, "+
		"or IP's) Verify and ResendCode may mismatch on in an hour; past it a check of a further phone is refused "+
		"(ResourceExhausted) before it can count a failure. Per process; 0: no limit")
	verifyRate := f.Float64("verify-rate", 100, "public Verify calls per second per tenant (every API key and JWT subject of it; the IP with --portal-auth=none), "+
		"against code guessing; 0: no limit")
	verifyBurst := f.Int("verify-burst", 200, "public Verify calls a tenant may make at once before --verify-rate applies")
	resendRate := f.Float64("resend-rate", 10, "public ResendCode calls per second per tenant, against SMS pumping; 0: no limit")
	resendBurst := f.Int("resend-burst", 20, "public ResendCode calls a tenant may make at once before --resend-rate applies")
	noonResend := f.Bool("noon-resend", true, "the noon resend: one automatic new code at --noon-resend-hour Beijing time "+
		"(Asia/Shanghai) of the day after a session's first code to every verifier still pending, if the window is still open")
	noonHour := f.Int("noon-resend-hour", 12, "the hour (0-23, Beijing time) of the noon resend")
	noonCounts := f.Bool("noon-resend-counts", false, "the automatic code uses up one of the verifier's --max-resends")
	noonDelay := f.Duration("noon-resend-delay", 0, "tests only: the automatic code is due this long after the first code "+
		"instead of on the next day at --noon-resend-hour; 0: the calendar rule")
	phoneCountries := f.String("phone-country-codes", phone.DefaultCountries, "country calling codes filing accepts "+
		"(set the same list as filing's): Verify and ResendCode answer a number of any other country as a malformed one")
	relayBatch := f.Int("relay-batch", outbox.DefaultMaxPerCall, "outbox rows of one target the relay sends in one batch call "+
		"(MarkVerifiedBatch, ReturnOrderBatch, CancelDeadlines: one receiver transaction each); 1 sends every row alone")
	linkBase := f.String("verify-link-base", "", "the verification page's link base, e.g. https://beian.example.cn/v: each SMS "+
		"then carries <base>/<token>, a link to the page of its one challenge; empty: no link in the text")
	if err := f.Parse(args); err != nil {
		return err
	}
	link, err := domain.CheckLinkBase(*linkBase)
	if err != nil {
		return err
	}
	countries, err := phone.ParseCountries(*phoneCountries)
	if err != nil {
		return fmt.Errorf("--phone-country-codes: %w", err)
	}
	if err := errors.Join(common.Check(), sec.Check()); err != nil {
		return err
	}
	limits := domain.Limits{MaxFailedAttempts: *maxFailed, MaxResends: *maxResends, ResendInterval: *resendInterval,
		PhoneFailureBudget: *phoneBudget, PhoneFailureWindow: *phoneWindow}
	if err := limits.Validate(); err != nil {
		return err
	}
	zone, err := time.LoadLocation(domain.NoonZone) // time/tzdata is linked in: images without zoneinfo work
	if err != nil {
		return fmt.Errorf("noon resend: %w", err)
	}
	noon := domain.NoonRule{Enabled: *noonResend, Hour: *noonHour, Counts: *noonCounts, Zone: zone, Delay: *noonDelay}
	if err := noon.Validate(); err != nil {
		return err
	}
	if *maxMismatched < 0 {
		return fmt.Errorf("--max-mismatched-phones-per-caller must not be negative")
	}
	if err := checkRelayBatch(*relayBatch); err != nil {
		return err
	}
	if *minResponse < 0 {
		return errors.New("--min-response-time must not be negative")
	}
	if *hmacKeys == "" && !common.Memory() {
		// A random key per process would make replicas disagree and every restart invalidate the codes.
		return errors.New("--hmac-keys (HMAC_KEYS) is required with --store=postgres: every replica and restart must use " +
			`the same key; make one with: HMAC_KEYS="k1:$(openssl rand -hex 32)"`)
	}
	if err := sealKeys.Check(common); err != nil {
		return err
	}

	base, err := service.Start("verification", common, sec, append(verificationOpenDefaults(*hmacKeys), sealKeys.OpenDefaults()...),
		rpc.RateLimit{Method: pb.VerificationService_Verify_FullMethodName, Rate: *verifyRate, Burst: *verifyBurst, PerTenant: true},
		rpc.RateLimit{Method: pb.VerificationService_ResendCode_FullMethodName, Rate: *resendRate, Burst: *resendBurst, PerTenant: true})
	if err != nil {
		return err
	}
	defer base.Close()
	log, obs, srv, peers := base.Log, base.Obs, base.Server, base.Peers

	hasher, err := newHasher(log, *hmacKeys)
	if err != nil {
		return err
	}
	keys, err := sealKeys.Keyring(log)
	if err != nil {
		return err
	}

	smsConn, err := peers.Dial(*smsAddr)
	if err != nil {
		return err
	}
	defer smsConn.Close()
	filingConn, err := peers.Dial(*filingAddr)
	if err != nil {
		return err
	}
	defer filingConn.Close()
	deadlineConn, err := peers.Dial(*deadlineAddr)
	if err != nil {
		return err
	}
	defer deadlineConn.Close()
	sms := smsv1.NewSmsDispatchServiceClient(smsConn)
	filing := filingv1.NewFilingInternalServiceClient(filingConn)
	deadline := deadlinev1.NewDeadlineServiceClient(deadlineConn)

	clk := clock.Real{}
	relay := &outbox.Relay{
		Observer: obs,
		Log:      log.Named("outbox"),
		Clock:    clk,
		Linger:   outbox.DefaultLinger,
		Handlers: map[string]outbox.Handler{
			convert.TargetSendMessage:    outbox.Call(sms.SendMessage),
			convert.TargetMarkVerified:   outbox.Call(filing.MarkVerified),
			convert.TargetReturnOrder:    outbox.Call(filing.ReturnOrder),
			convert.TargetCancelDeadline: outbox.Call(deadline.CancelDeadline),
			convert.TargetScheduleNoon:   outbox.Call(deadline.ScheduleNoonResend),
		},
		BatchHandlers: batchHandlers(filing, deadline, *relayBatch),
		MaxPerCall:    *relayBatch,
	}
	metrics := grpcapi.NewMetrics(obs.Registry)
	var engine app.Engine
	if common.Memory() {
		q := outbox.NewMemQueue(keys)
		relay.Queue = q
		ms := memstore.New(memstore.NewDB(q), clk, hasher, limits, log, relay.Wake)
		ms.OnLock = metrics.Locked
		engine = ms
	} else {
		pool, err := base.Postgres(ctx, store.Migrations, outbox.Migrations, idempotency.Migrations)
		if err != nil {
			return err
		}
		defer pool.Close()
		relay.Queue = outbox.PGQueue{Pool: pool, Keys: keys}
		ps := store.New(pool, clk, hasher, keys, limits, log, relay.Wake)
		ps.OnLock = metrics.Locked
		engine = ps
	}
	st := app.New(engine, hasher, limits, log)
	st.SetNoon(noon)
	st.LinkBase = link
	st.Mismatches = app.NewMismatchThrottle(clk, hasher, *maxMismatched)
	st.OnLock = metrics.Locked // a public resend's mismatch can lock too

	grpcapi.Register(srv.Public(), srv.Internal(), &grpcapi.Public{Store: st, MinResponseTime: *minResponse, Metrics: metrics, Phones: countries},
		&grpcapi.Internal{Store: st, Metrics: metrics})
	srv.Go("outbox", relay.Run)
	log.Info("verification starting", zap.String("addr", *common.GRPCAddr), zap.String("hmac_key_id", hasher.ActiveKeyID()),
		zap.Int("max_failed_attempts", limits.MaxFailedAttempts), zap.Int("max_resends", limits.MaxResends),
		zap.Duration("resend_interval", limits.ResendInterval), zap.Int("phone_failure_budget", limits.PhoneFailureBudget),
		zap.Duration("phone_failure_window", limits.PhoneFailureWindow),
		zap.Duration("min_response_time", *minResponse), zap.Bool("noon_resend", noon.Enabled), zap.Int("noon_resend_hour", noon.Hour),
		zap.Bool("noon_resend_counts", noon.Counts), zap.Stringer("phone_country_codes", countries),
		zap.Int("relay_batch", *relayBatch), zap.String("verify_link_base", link), zap.String("store", *common.Store))
	return base.Serve(ctx)
}

// newHasher parses --hmac-keys; with none (allowed only with --store=memory) it makes an ephemeral key
// and says loudly what that means.
func newHasher(log *zap.Logger, spec string) (*domain.Hasher, error) {
	if spec == "" {
		k, err := domain.EphemeralKey()
		if err != nil {
			return nil, err
		}
		log.Warn("NO --hmac-keys (HMAC_KEYS) CONFIGURED: using a random ephemeral key, FOR DEVELOPMENT ONLY. " +
			"Set HMAC_KEYS=kid:hexkey (>= 32 bytes) for anything else.")
		return domain.NewHasher([]domain.Key{k})
	}
	keys, err := domain.ParseKeys(spec)
	if err != nil {
		return nil, fmt.Errorf("--hmac-keys: %w", err)
	}
	return domain.NewHasher(keys)
}

// verificationOpenDefaults: a placeholder HMAC key (copied from an example, or one character repeated)
// lets anyone who read it compute the hashes of codes and ID tails.
func verificationOpenDefaults(hmacKeys string) []config.OpenDefault {
	if keyspec.HasPlaceholder(hmacKeys) {
		return []config.OpenDefault{{Flag: "--hmac-keys", What: "an HMAC key is a placeholder"}}
	}
	return nil
}
