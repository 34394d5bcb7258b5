package app

import (
	"context"
	"time"

	"go.uber.org/zap"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// AutoResend makes the noon resend of one submission (domain.DecideAutoResend): one new code per
// verifier still pending, each sent like any resend (the same message id scheme, a new generation),
// and the session marked in the same transaction, so another call sends nothing.
func (a *App) AutoResend(ctx context.Context, req *pb.AutoResendRequest) (*pb.AutoResendResponse, error) {
	o := op[*pb.AutoResendResponse](pb.VerificationInternalService_AutoResend_FullMethodName, req.GetRequestId(), req)
	return answer[*pb.AutoResendResponse](a.engine.UpdateOrder(ctx, o, req.GetOrderId(),
		func(o *domain.OrderSessions, now time.Time) (Change, error) {
			rec := o.Find(req.GetSubmission())
			if rec == nil {
				return Change{}, domain.ErrSessionNotFound()
			}
			outcome, sent, err := domain.DecideAutoResend(now, rec, a.noon, a.limits, a.hasher, a.rand)
			if err != nil {
				return Change{}, err
			}
			resp := &pb.AutoResendResponse{Outcome: convert.AutoResendOutcome(outcome)}
			var msgs []outbox.Message
			for _, s := range sent {
				c := &rec.Challenges[s.Index]
				token, err := domain.DrawLink(c) // the new code's link, as a resend's; the old one dies with the old code
				if err != nil {
					return Change{}, err
				}
				resp.VerifierIds = append(resp.VerifierIds, c.VerifierID)
				msgs = append(msgs, convert.CodeMessage(rec.Session, *c, s.Code, domain.LinkURL(a.LinkBase, token)))
			}
			a.log.Info("noon resend", logging.OrderID(rec.OrderID), logging.Submission(rec.Submission),
				zap.String("outcome", resp.Outcome.String()), zap.Strings("verifier_ids", resp.VerifierIds))
			return Change{Answer: resp, Messages: msgs}, nil
		}))
}
