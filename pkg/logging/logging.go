// Package logging builds the JSON zap logger every service uses and holds the typed field helpers,
// so log keys stay the same across services and personal data is masked at the source.
package logging

import (
	"fmt"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/icpverify/icpverify/pkg/pii"
)

// New returns a JSON logger at level ("debug", "info", "warn", "error") tagged with the service name.
func New(service, level string) (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	cfg.Level = zap.NewAtomicLevelAt(lvl)
	cfg.EncoderConfig.TimeKey = "ts"
	cfg.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	cfg.Sampling = nil
	log, err := cfg.Build()
	if err != nil {
		return nil, err
	}
	return log.With(zap.String("service", service)), nil
}

// OrderID tags a log line with an order id.
func OrderID(id string) zap.Field { return zap.String("order_id", id) }

// Submission tags a log line with a submission number.
func Submission(n int32) zap.Field { return zap.Int32("submission", n) }

// MessageID tags a log line with an SMS message id.
func MessageID(id string) zap.Field { return zap.String("message_id", id) }

// Phone logs a phone number masked (138****5678); the whole number never reaches a log.
func Phone(e164 string) zap.Field { return zap.String("phone", pii.MaskPhone(e164)) }

// RequestID tags a log line with the caller's request id.
func RequestID(id string) zap.Field { return zap.String("request_id", id) }
