// Package server wires the filing service: flags, logger, the storage engine (PostgreSQL with its
// migrations, or memory for the one-process dev server), the use cases on it, the gRPC handlers and
// the outbox relay that delivers calls to verification and deadline. Run is exported so a one-process dev server can start every
// service of the suite side by side.
package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/config"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/pkg/service"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
	"github.com/icpverify/icpverify/services/filing/internal/grpcapi"
	"github.com/icpverify/icpverify/services/filing/internal/store"
	"github.com/icpverify/icpverify/services/filing/internal/store/memstore"
)

// Run serves the filing service until ctx ends. args are the command-line arguments without the
// program name; every flag can also come from the environment (see pkg/config).
func Run(ctx context.Context, args []string) error {
	f := config.NewFlags("filing")
	common := config.RegisterCommon(f, config.DefaultFilingAddr, "filing")
	sec := config.RegisterSecurity(f, config.PublicAPI|config.Peers)
	verificationAddr := f.String("verification-addr", config.DefaultVerificationAddr, "address of the verification service")
	deadlineAddr := f.String("deadline-addr", config.DefaultDeadlineAddr, "address of the deadline service")
	window := f.Duration("verification-window", 24*time.Hour, "how long the verifiers of a submission have to pass (CONFIGURABLE, domain.md)")
	addWebsitePrincipal := f.Bool("add-website-principal", false,
		"ADD_WEBSITE orders are verified by the principal too, not only when subject data changes (CONFIGURABLE, domain.md)")
	locale := f.String("sms-locale", "zh-CN", "locale of the verification SMS text: zh-CN or en")
	phoneCountries := f.String("phone-country-codes", phone.DefaultCountries, "country calling codes an order's phone numbers "+
		"may have, comma-separated, e.g. 86,852 (CONFIGURABLE; default mainland China only, against SMS pumping)")
	maxWebsites := f.Int("max-websites-per-order", domain.DefaultMaxWebsites,
		fmt.Sprintf("services (websites, APPs, mini programmes, quick apps) an order may list, 1 to %d", domain.CeilingMaxWebsites))
	backIDProvinces := f.String("back-id-tail-provinces", "ZJ",
		"provinces whose administration checks a HK/Macau permit holder against the last 6 characters of the Hong Kong or Macau "+
			"identity card on the permit's back (hk_macao_id_number, e.g. 567(8)) instead of the permit's number: GB/T 2260 codes, "+
			"abbreviations or names, comma-separated; empty: none (CONFIGURABLE, domain.md)")
	defaultProvince := f.String("default-province", "",
		"the province (管局) of a FIRST_FILING that names none: a GB/T 2260 code, abbreviation or name; empty: the order stays "+
			"without one and its verifiers type their own documents' tails")
	maxOpen := f.Int("max-open-challenges-per-phone", domain.DefaultMaxOpenChallengesPerPhone,
		"orders awaiting verification, across all tenants, that may name one phone at once; a submission past it is refused "+
			"TOO_MANY_OPEN_CHALLENGES (bounds what one guess at a phone can hit: docs/security.md; negative: no limit)")
	cooldown := f.Duration("resubmit-cooldown", domain.DefaultResubmitCooldown,
		"how long an order returned for too many failed checks waits before it is submitted again: RESUBMIT_COOLDOWN (0 or negative: none)")
	perDay := f.Int("max-submissions-per-day", domain.DefaultMaxSubmissionsPerDay,
		"submissions of one order in any 24 hours; more: SUBMISSIONS_EXCEEDED (0 or negative: no limit)")
	maxVerifiers := f.Int("max-verifiers-per-order", domain.DefaultMaxVerifiers,
		fmt.Sprintf("verifiers (distinct phones that receive a code) an order may have, 1 to %d", domain.CeilingMaxVerifiers))
	mismatchBudget := f.Int("record-mismatch-budget", domain.DefaultRecordMismatchBudget,
		"comparisons of one tenant's ADD_ACCESS orders with approved records it does not hold that may fail to match within "+
			"--record-mismatch-window; past it the tenant's next comparison with such a record, and its create or update of such an "+
			"order, is refused RECORD_MISMATCH_BUDGET before anything is compared (the record oracle: docs/security.md; "+
			"CONFIGURABLE; 0 or negative: no budget)")
	mismatchWindow := f.Duration("record-mismatch-window", domain.DefaultRecordMismatchWindow,
		"the rolling window of --record-mismatch-budget (CONFIGURABLE)")
	createRate := f.Float64("create-rate", 20, "public CreateOrder calls per second per tenant (every API key and JWT subject "+
		"of the tenant together; per IP with --portal-auth=none); past it RATE_LIMITED with the delay. Per process; 0: no limit")
	createBurst := f.Int("create-burst", 40, "public CreateOrder calls a tenant may make at once before --create-rate applies")
	updateRate := f.Float64("update-rate", 20, "public UpdateOrder calls per second per tenant, as --create-rate; 0: no limit")
	updateBurst := f.Int("update-burst", 40, "public UpdateOrder calls a tenant may make at once before --update-rate applies")
	submitRate := f.Float64("submit-rate", 5, "public SubmitOrder calls per second per tenant, as --create-rate (each "+
		"submission sends SMS); 0: no limit")
	submitBurst := f.Int("submit-burst", 10, "public SubmitOrder calls a tenant may make at once before --submit-rate applies")
	if err := f.Parse(args); err != nil {
		return err
	}
	if err := errors.Join(common.Check(), sec.Check()); err != nil {
		return err
	}
	countries, err := phone.ParseCountries(*phoneCountries)
	if err != nil {
		return fmt.Errorf("--phone-country-codes: %w", err)
	}
	backIDs, err := domain.ParseProvinces(*backIDProvinces)
	if err != nil {
		return fmt.Errorf("--back-id-tail-provinces: %w", err)
	}
	defProvince, ok := domain.ParseProvince(*defaultProvince)
	if !ok && strings.TrimSpace(*defaultProvince) != "" {
		return fmt.Errorf("--default-province %q: not a mainland province (use a GB/T 2260 code, an abbreviation like ZJ or a name)", *defaultProvince)
	}
	rules := domain.Rules{AddWebsitePrincipal: *addWebsitePrincipal, PhoneCountries: countries,
		MaxWebsites: *maxWebsites, MaxVerifiers: *maxVerifiers, BackIDTailProvinces: backIDs, DefaultProvince: defProvince}
	if err := rules.Validate(); err != nil {
		return err
	}
	if *window <= 0 {
		return errors.New("--verification-window must be positive")
	}
	if *locale != "zh-CN" && *locale != "en" {
		return fmt.Errorf("--sms-locale %q: use zh-CN or en", *locale)
	}
	if *mismatchBudget > 0 && *mismatchWindow <= 0 {
		return errors.New("--record-mismatch-window must be positive while --record-mismatch-budget is on")
	}
	for name, v := range map[string]float64{"create-rate": *createRate, "create-burst": float64(*createBurst), "update-rate": *updateRate,
		"update-burst": float64(*updateBurst), "submit-rate": *submitRate, "submit-burst": float64(*submitBurst)} {
		if v < 0 {
			return fmt.Errorf("--%s must not be negative", name)
		}
	}

	base, err := service.Start("filing", common, sec, nil, grpcapi.RateLimits(grpcapi.Rate{PerSecond: *createRate, Burst: *createBurst},
		grpcapi.Rate{PerSecond: *updateRate, Burst: *updateBurst}, grpcapi.Rate{PerSecond: *submitRate, Burst: *submitBurst})...)
	if err != nil {
		return err
	}
	defer base.Close()
	log, obs, srv, peers := base.Log, base.Obs, base.Server, base.Peers

	clk := clock.Real{}
	// The two engines differ only in storage: the use cases (app) and the relay see the same interfaces.
	var (
		engine app.Engine
		relay  = &outbox.Relay{Observer: obs, Log: log.Named("outbox"), Clock: clk, Linger: outbox.DefaultLinger}
	)
	// Filing's outbox seals nothing (nil keys): its sensitive payloads, the phones and ID tails of
	// OpenSession, are in its orders in the same database anyway, and it never sees a code
	// (docs/security.md, "Codes at rest").
	if common.Memory() {
		mq := outbox.NewMemQueue(nil)
		engine, relay.Queue = memstore.New(clk, mq, relay.Wake), mq
	} else {
		pool, err := base.Postgres(ctx, store.Migrations, outbox.Migrations, idempotency.Migrations)
		if err != nil {
			return err
		}
		defer pool.Close()
		engine, relay.Queue = store.New(pool, clk, relay.Wake), outbox.PGQueue{Pool: pool}
	}

	verificationConn, err := peers.Dial(*verificationAddr)
	if err != nil {
		return err
	}
	defer verificationConn.Close()
	deadlineConn, err := peers.Dial(*deadlineAddr)
	if err != nil {
		return err
	}
	defer deadlineConn.Close()
	verification := verificationv1.NewVerificationInternalServiceClient(verificationConn)
	deadline := deadlinev1.NewDeadlineServiceClient(deadlineConn)
	relay.Handlers = map[string]outbox.Handler{
		convert.TargetOpenSession:      outbox.Call(verification.OpenSession),
		convert.TargetCancelSession:    outbox.Call(verification.CancelSession),
		convert.TargetScheduleDeadline: outbox.Call(deadline.ScheduleDeadline),
		convert.TargetCancelDeadline:   outbox.Call(deadline.CancelDeadline),
	}

	uses := app.New(engine, app.Config{Rules: rules, VerificationWindow: *window, Locale: *locale,
		MaxOpenChallengesPerPhone: *maxOpen, Submits: domain.SubmitLimits{ResubmitCooldown: orNone(*cooldown), MaxPerDay: orNone(*perDay)},
		Mismatches: domain.MismatchBudget{Max: orNone(*mismatchBudget), Window: *mismatchWindow}, Log: log})
	grpcapi.Register(srv.Public(), srv.Internal(), uses, rules)
	srv.Go("outbox", relay.Run)
	log.Info("filing starting", zap.String("addr", *common.GRPCAddr), zap.String("verification_addr", *verificationAddr),
		zap.String("deadline_addr", *deadlineAddr), zap.Duration("verification_window", *window),
		zap.Bool("add_website_principal", *addWebsitePrincipal), zap.Stringer("phone_country_codes", countries),
		zap.Int("max_websites_per_order", *maxWebsites), zap.Strings("back_id_tail_provinces", backIDs),
		zap.String("default_province", defProvince), zap.Int("max_verifiers_per_order", *maxVerifiers),
		zap.Int("record_mismatch_budget", *mismatchBudget), zap.Duration("record_mismatch_window", *mismatchWindow),
		zap.Float64("create_rate", *createRate), zap.Float64("update_rate", *updateRate), zap.Float64("submit_rate", *submitRate),
		zap.String("store", *common.Store))
	return base.Serve(ctx)
}

// orNone maps a flag's 0 ("none") to the negative value app.Config reads as none (its 0 is the default).
func orNone[T int | time.Duration](v T) T {
	if v == 0 {
		return -1
	}
	return v
}
