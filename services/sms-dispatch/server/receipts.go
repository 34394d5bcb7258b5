package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/receipts"
)

// receiptOptions are the flags of the receipt endpoint and the AT_RISK sweep.
type receiptOptions struct {
	Addr, Token string
	// Timeout is how long a SENT message waits for its receipt before it is AT_RISK.
	Timeout time.Duration
	// TLS: the server's --tls-cert-file and --tls-key-file, when set.
	CertFile, KeyFile string
}

// minReceiptToken is the shortest --receipt-token: it is the only secret of the providers' pushes.
const minReceiptToken = 16

func registerReceipts(f *config.Flags) func(sec config.Security) receiptOptions {
	addr := f.String("receipt-addr", "",
		"listen address of the delivery receipt endpoint (aliyun SmsReport, tencent status callback, webhook receipts); empty: off")
	token := f.String("receipt-token", "",
		"secret of the receipt endpoint: the last path segment of the aliyun and tencent push URLs, the webhook's bearer token (never logged)")
	timeout := f.Duration("receipt-timeout", domain.DefaultAtRiskAfter,
		"a SENT message without a receipt this long becomes AT_RISK (its verifier's status shows it)")
	return func(sec config.Security) receiptOptions {
		return receiptOptions{Addr: *addr, Token: *token, Timeout: *timeout,
			CertFile: config.Get(sec.TLSCertFile), KeyFile: config.Get(sec.TLSKeyFile)}
	}
}

func (o receiptOptions) check() []error {
	var problems []error
	if o.Addr != "" && len(o.Token) < minReceiptToken {
		problems = append(problems, fmt.Errorf("--receipt-token must have at least %d characters with --receipt-addr", minReceiptToken))
	}
	if o.Timeout <= 0 {
		problems = append(problems, errors.New("--receipt-timeout must be positive"))
	}
	return problems
}

func (o receiptOptions) openDefaults() []config.OpenDefault {
	if o.Addr != "" && config.IsPlaceholder(o.Token) {
		return []config.OpenDefault{{Flag: "--receipt-token", What: "the receipt endpoint's token is a placeholder"}}
	}
	return nil
}

// serveReceipts serves h on o.Addr (TLS with the server's certificate when set) until ctx ends.
func serveReceipts(ctx context.Context, log *zap.Logger, o receiptOptions, h http.Handler) (func(context.Context) error, error) {
	lis, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("receipt listener on %s: %w", o.Addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: 15 * time.Second, IdleTimeout: 90 * time.Second, MaxHeaderBytes: 16 << 10,
		ErrorLog: zap.NewStdLog(log.Named("receipts"))}
	log.Info("receipt endpoint listening", zap.String("receipt_addr", lis.Addr().String()), zap.Bool("tls", o.CertFile != ""))
	return func(ctx context.Context) error {
		served := make(chan error, 1)
		go func() {
			if o.CertFile != "" {
				served <- srv.ServeTLS(lis, o.CertFile, o.KeyFile)
			} else {
				served <- srv.Serve(lis)
			}
		}()
		select {
		case err := <-served:
			return fmt.Errorf("receipt endpoint: %w", err)
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}, nil
}

var _ http.Handler = (*receipts.Handler)(nil)
