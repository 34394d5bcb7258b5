package server

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// failoverOptions are the flags of an ordered provider list.
type failoverOptions struct {
	// Providers is --sms-providers split; empty: --sms-provider alone.
	Providers       []string
	BreakerFailures int
	BreakerCooldown time.Duration
	// RedeliverTries is how many times a message may go out again through another provider after
	// an UNDELIVERED receipt or none in time (domain.Redelivery); 0: never.
	RedeliverTries int
}

func registerFailover(f *config.Flags) func() failoverOptions {
	list := f.String("sms-providers", "",
		"ordered SMS providers for failover, comma-separated (e.g. aliyun,tencent), each configured by its own flags; overrides --sms-provider")
	failures := f.Int("breaker-failures", dispatcher.DefaultBreakerFailures,
		"failover: consecutive transient or account refusals that open a provider's circuit breaker")
	cooldown := f.Duration("breaker-cooldown", dispatcher.DefaultBreakerCooldown,
		"failover: how long an open breaker skips its provider before one probe message goes to it")
	redeliver := f.Int("redeliver-tries", 1,
		"failover: times a message SENT but reported UNDELIVERED (or without a receipt in time) goes out again, same message id, "+
			"through the next provider that never had it (0: never)")
	return func() failoverOptions {
		var names []string
		for n := range strings.SplitSeq(*list, ",") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
		return failoverOptions{Providers: names, BreakerFailures: *failures, BreakerCooldown: *cooldown, RedeliverTries: *redeliver}
	}
}

// names is the provider order: --sms-providers, else --sms-provider.
func (o options) names() []string {
	if len(o.Failover.Providers) > 0 {
		return o.Failover.Providers
	}
	return []string{o.Provider}
}

// each is o once per provider of the list, its Provider set to that one (so that the one-provider
// checks and builders apply to each).
func (o options) each() []options {
	var out []options
	for _, n := range o.names() {
		one := o
		one.Provider = n
		out = append(out, one)
	}
	return out
}

// checkAll checks every provider of the list with its own flags, and the list itself.
func (o options) checkAll() error {
	var problems []error
	seen := map[string]bool{}
	for _, one := range o.each() {
		for _, err := range unjoin(one.check()) {
			if !seen[err.Error()] {
				seen[err.Error()] = true
				problems = append(problems, err)
			}
		}
	}
	names := o.names()
	for i, n := range names {
		if slices.Contains(names[:i], n) {
			problems = append(problems, fmt.Errorf("--sms-providers names %q twice: a message goes to each provider at most once", n))
		}
	}
	if len(names) > 1 && (o.Failover.BreakerFailures < 1 || o.Failover.BreakerCooldown <= 0) {
		problems = append(problems, errors.New("--breaker-failures must be at least 1 and --breaker-cooldown positive"))
	}
	if o.Failover.RedeliverTries < 0 {
		problems = append(problems, errors.New("--redeliver-tries must not be negative (0: no redelivery)"))
	}
	return errors.Join(problems...)
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// providers builds the providers in order and the time the longest provider call may take.
func (o options) providers() ([]provider.Provider, time.Duration) {
	var (
		out     []provider.Provider
		longest time.Duration
	)
	for _, one := range o.each() {
		p, t := one.provider()
		out = append(out, p)
		longest = max(longest, t)
	}
	return out, longest
}

// openDefaultsAll is smsOpenDefaults of every provider of the list, each flag once.
func (o options) openDefaultsAll() []config.OpenDefault {
	var out []config.OpenDefault
	for _, one := range o.each() {
		for _, d := range smsOpenDefaults(one) {
			if !slices.ContainsFunc(out, func(x config.OpenDefault) bool { return x.Flag == d.Flag }) {
				out = append(out, d)
			}
		}
	}
	return out
}

// redelivery is the redelivery configuration of the stores: on only with a failover list.
func (o options) redelivery() domain.Redelivery {
	if len(o.Failover.Providers) < 2 {
		return domain.Redelivery{}
	}
	return domain.Redelivery{Tries: o.Failover.RedeliverTries, Providers: o.Failover.Providers}
}

// development: only the console provider keeps and shows the texts; in a list with a real provider
// the texts are wiped on acceptance.
func (o options) development() bool {
	return !slices.ContainsFunc(o.names(), func(n string) bool { return n != "console" })
}
