package server

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/icpverify/icpverify/pkg/config"
	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/services/edge/internal/page"
)

// pageFlags are the flags of the 短信核验 page.
type pageFlags struct {
	keyFile         *string
	secretFile      *string
	noCredential    *bool
	captchaOnVerify *bool
	perMinute       *int
	burst           *int
	trustedProxies  *string
}

func registerPageFlags(f *config.Flags) *pageFlags {
	return &pageFlags{
		keyFile: f.String("page-api-key-file", "", "file holding the API key the 短信核验 page sends (x-api-key) on its Verify and "+
			"ResendCode calls: the authority's cross-tenant portal key; empty: the page is off (unless --page-no-credential)"),
		secretFile: f.String("page-secret-file", "", "file holding the page's secret (at least 32 bytes, e.g. 64 hex digits) that "+
			"keys its CSRF tokens and captchas; every replica behind one address must share it. Empty: a random secret per "+
			"process (one replica only)"),
		noCredential: f.Bool("page-no-credential", false, "serve the page without a key, calling the services with no credential "+
			"(development only: for services running --portal-auth=none)"),
		captchaOnVerify: f.Bool("page-captcha-on-verify", false, "ask for the image/audio captcha on the 短信核验 form too "+
			"(the 短信重发 form always asks for it)"),
		perMinute: f.Int("page-posts-per-minute", 20, "form posts one client address may make per minute on the page (token bucket); 0: no limit"),
		burst:     f.Int("page-burst", 10, "form posts one client address may make at once before --page-posts-per-minute applies"),
		trustedProxies: f.String("trusted-proxies", "", "comma-separated CIDRs of the reverse proxies whose X-Forwarded-For names the "+
			"client (e.g. 10.0.0.0/8); from anyone else X-Forwarded-For is ignored"),
	}
}

// newPage builds the page, or returns nil (off, logged) when it has no credential to call with.
func (pf *pageFlags) newPage(log *zap.Logger, conn grpc.ClientConnInterface, timeout time.Duration) (*page.Page, error) {
	var proxies []netip.Prefix
	for _, s := range strings.Split(*pf.trustedProxies, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		p, err := netip.ParsePrefix(s)
		if err != nil {
			if a, aerr := netip.ParseAddr(s); aerr == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			} else {
				return nil, fmt.Errorf("--trusted-proxies %q: %w", s, err)
			}
		}
		proxies = append(proxies, p.Masked())
	}
	if *pf.perMinute < 0 || *pf.burst < 1 {
		return nil, errors.New("--page-posts-per-minute must be >= 0 and --page-burst >= 1")
	}
	var key string
	switch {
	case *pf.keyFile != "":
		b, err := os.ReadFile(*pf.keyFile)
		if err != nil {
			return nil, fmt.Errorf("--page-api-key-file: %w", err)
		}
		if key = strings.TrimSpace(string(b)); key == "" {
			return nil, fmt.Errorf("--page-api-key-file %s is empty", *pf.keyFile)
		}
	case *pf.noCredential:
		log.Warn("the 短信核验 page calls the services without a credential (--page-no-credential): development only")
	default:
		log.Info("the 短信核验 page is off: no --page-api-key-file (the authority's cross-tenant portal key)")
		return nil, nil
	}
	var secret []byte
	if *pf.secretFile != "" {
		b, err := os.ReadFile(*pf.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--page-secret-file: %w", err)
		}
		if secret = []byte(strings.TrimSpace(string(b))); len(secret) < 32 {
			return nil, fmt.Errorf("--page-secret-file %s holds %d bytes, want at least 32", *pf.secretFile, len(secret))
		}
		if config.IsPlaceholder(string(secret)) {
			return nil, fmt.Errorf("--page-secret-file %s holds a placeholder (copied from an example): anyone who read it "+
				"could forge the page's CSRF tokens and answer its captchas; make one with deploy/gen-secrets.sh", *pf.secretFile)
		}
	} else {
		log.Warn("the 短信核验 page has a secret of this process only (no --page-secret-file): run one replica, " +
			"or forms and captchas drawn on one replica fail on another")
	}
	return page.New(page.Options{
		Secret:       secret,
		Verification: verificationv1.NewVerificationServiceClient(conn), APIKey: key,
		CaptchaOnVerify: *pf.captchaOnVerify, RatePerSecond: float64(*pf.perMinute) / 60, Burst: *pf.burst,
		TrustedProxies: proxies, RequestTimeout: timeout, Log: log.Named("page"),
	})
}
