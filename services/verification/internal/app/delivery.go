package app

import (
	"context"
	"time"

	"go.uber.org/zap"

	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// ReportDelivery applies sms-dispatch's report on one code message (domain.ApplyDelivery) under the
// order's lock, so a resend that already replaced the code leaves the report nothing to do: FAILED
// and UNDELIVERED void the code of the challenge whose current message it is, DELIVERED and AT_RISK
// change what its status shows. Whatever the report finds, it is answered OK: a report about a
// vanished or finished session is not worth a retry, and an error here would have sms-dispatch's
// outbox retry (or park) it.
func (a *App) ReportDelivery(ctx context.Context, req *pb.ReportDeliveryRequest, r domain.DeliveryReport) (*pb.ReportDeliveryResponse, error) {
	o := op[*pb.ReportDeliveryResponse](pb.VerificationInternalService_ReportDelivery_FullMethodName, req.GetRequestId(), req)
	return answer[*pb.ReportDeliveryResponse](a.engine.UpdateOrder(ctx, o, r.OrderID,
		func(o *domain.OrderSessions, _ time.Time) (Change, error) {
			rec, c, voided := domain.ApplyDelivery(o, r)
			if c == nil {
				a.log.Debug("delivery report changes nothing (another generation, a finished verifier, a repeat, or an unknown message)",
					logging.OrderID(r.OrderID), logging.MessageID(r.MessageID), zap.String("state", string(r.State)))
				return Change{Answer: &pb.ReportDeliveryResponse{}}, nil
			}
			fields := []zap.Field{logging.OrderID(rec.OrderID), logging.Submission(rec.Submission), zap.String("verifier_id", c.VerifierID),
				zap.Int("generation", c.Generation), zap.String("state", string(r.State)), zap.String("reason", r.Reason), logging.Phone(c.Phone)}
			switch {
			case voided:
				a.log.Warn("code voided: its SMS never reached the phone; a resend sends a new one, another number may be needed", fields...)
			case r.State == domain.DeliveryAtRisk:
				a.log.Warn("code's SMS has no receipt in time: it may not arrive", fields...)
			default:
				a.log.Info("code's delivery reported", fields...)
			}
			return Change{Answer: &pb.ReportDeliveryResponse{Voided: voided}}, nil
		}))
}
