package page

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
)

func fmtAt(format, at string) string { return fmt.Sprintf(format, at) }

// seconds is a Retry-After value: d in whole seconds, rounded up.
func seconds(d time.Duration) string { return strconv.Itoa(int((d + time.Second - 1) / time.Second)) }

// reason is the ErrorInfo reason name of r (VERIFICATION_NOT_MATCHED...).
func reason(r verificationv1.ErrorReason) string { return rpc.ReasonName(r) }

// verify calls Verify (through the link of token, when not empty) and fills v with the answer; it
// returns the HTTP status of the page.
func (p *Page) verify(ctx context.Context, v *view, code, token string, now time.Time) int {
	resp, err := p.o.Verification.Verify(ctx, &verificationv1.VerifyRequest{Phone: v.Phone, Code: code, IdTail: v.IDTail, LinkToken: token})
	if err != nil {
		return p.refusal(v, err, now)
	}
	v.AnswerOK = true
	msg := resp.GetMessageZh()
	if v.Lang == English {
		msg = resp.GetMessageEn()
	}
	if msg == "" { // an older service: the page's own copy of the same words
		msg = v.T.Waiting
		if resp.GetResult() == verificationv1.VerifyResult_VERIFY_RESULT_ALL_PASSED {
			msg = v.T.AllDone
		}
	}
	v.Answer = msg
	return http.StatusOK
}

// resend calls ResendCode and fills v with the answer.
func (p *Page) resend(ctx context.Context, v *view, now time.Time) int {
	resp, err := p.o.Verification.ResendCode(ctx, &verificationv1.ResendCodeRequest{RequestId: requestID(), Phone: v.Phone, IdTail: v.IDTail})
	if err != nil {
		return p.refusal(v, err, now)
	}
	v.AnswerOK = true
	v.Answer = v.T.sentLeft(resp.GetResend().GetResendsLeft())
	switch resp.GetResend().GetPreviousDelivery() {
	case verificationv1.CodeDelivery_CODE_DELIVERY_UNDELIVERED, verificationv1.CodeDelivery_CODE_DELIVERY_AT_RISK:
		v.AnswerNote = v.T.Undelivered
	}
	return http.StatusOK
}

// refusal turns a service error into the page's words: the uniform mismatch text for every
// mismatch, the limit and cool-down texts with the time, the field a malformed input is in.
func (p *Page) refusal(v *view, err error, now time.Time) int {
	t := v.T
	wait := rpc.RetryDelay(err)
	limited := func(format string) int {
		if wait <= 0 {
			wait = time.Minute
		}
		v.retryAfter = seconds(wait)
		v.Answer = fmtAt(format, t.at(now, wait))
		return http.StatusTooManyRequests
	}
	switch rpc.Reason(err) {
	case reason(verificationv1.ErrorReason_ERROR_REASON_VERIFICATION_NOT_MATCHED):
		v.Answer = t.Mismatch
		return http.StatusOK
	case reason(verificationv1.ErrorReason_ERROR_REASON_VERIFIER_NOT_PENDING):
		v.Answer = t.NotPending
		return http.StatusOK
	case reason(verificationv1.ErrorReason_ERROR_REASON_RESEND_LIMIT_REACHED):
		v.Answer = t.ResendLimit
		return http.StatusOK
	case reason(verificationv1.ErrorReason_ERROR_REASON_RESEND_TOO_SOON):
		return limited(t.ResendTooSoon)
	case reason(verificationv1.ErrorReason_ERROR_REASON_TOO_MANY_MISMATCHED_PHONES):
		return limited(t.TooMany)
	case rpc.ReasonRateLimited:
		return limited(t.RateLimited)
	case reason(verificationv1.ErrorReason_ERROR_REASON_PHONE_LOCKED):
		v.Answer = t.PhoneLocked
		return http.StatusOK
	case reason(verificationv1.ErrorReason_ERROR_REASON_INVALID_CODE):
		v.FieldErr["code"] = t.FieldCode
	case reason(verificationv1.ErrorReason_ERROR_REASON_INVALID_PHONE),
		reason(verificationv1.ErrorReason_ERROR_REASON_PHONE_COUNTRY_NOT_ALLOWED):
		v.FieldErr["phone"] = t.FieldPhone
	case reason(verificationv1.ErrorReason_ERROR_REASON_INVALID_ID_TAIL),
		reason(verificationv1.ErrorReason_ERROR_REASON_MISSING_ID_TAIL):
		v.FieldErr["id_tail"] = t.FieldIDTail
	}
	if len(v.FieldErr) > 0 {
		v.Answer = t.BadForm
		return http.StatusBadRequest
	}
	if status.Code(err) == codes.ResourceExhausted {
		return limited(t.RateLimited)
	}
	// Never the service's message: it is for developers. Nothing personal is logged.
	p.o.Log.Warn("page: service call failed", zap.String("grpc_code", status.Code(err).String()), zap.String("reason", rpc.Reason(err)))
	v.Answer = t.Unavailable
	return http.StatusServiceUnavailable
}
