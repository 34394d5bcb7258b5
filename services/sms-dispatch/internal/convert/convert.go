// Package convert is where sms-dispatch's domain meets the wire: the protobuf form of messages in
// answers and the domain form of request enums, written once for every handler.
package convert

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	"github.com/icpverify/icpverify/pkg/pii"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// TemplateFromProto is the domain form of a request's template.
func TemplateFromProto(t smsv1.Template) domain.Template {
	if t == smsv1.Template_TEMPLATE_VERIFICATION_CODE {
		return domain.TemplateVerificationCode
	}
	return domain.TemplateUnspecified
}

func templateToProto(t domain.Template) smsv1.Template {
	if t == domain.TemplateVerificationCode {
		return smsv1.Template_TEMPLATE_VERIFICATION_CODE
	}
	return smsv1.Template_TEMPLATE_UNSPECIFIED
}

func stateToProto(s domain.State) smsv1.MessageState {
	switch s {
	case domain.StateQueued:
		return smsv1.MessageState_MESSAGE_STATE_QUEUED
	case domain.StateSent:
		return smsv1.MessageState_MESSAGE_STATE_SENT
	case domain.StateFailed:
		return smsv1.MessageState_MESSAGE_STATE_FAILED
	case domain.StateDelivered:
		return smsv1.MessageState_MESSAGE_STATE_DELIVERED
	case domain.StateUndelivered:
		return smsv1.MessageState_MESSAGE_STATE_UNDELIVERED
	case domain.StateAtRisk:
		return smsv1.MessageState_MESSAGE_STATE_AT_RISK
	}
	return smsv1.MessageState_MESSAGE_STATE_UNSPECIFIED
}

// Message renders m for a response: the phone masked, the body only when showText (development
// mode, see grpcapi.Server.ShowText).
func Message(m domain.Message, showText bool) *smsv1.Message {
	p := &smsv1.Message{
		MessageId:    m.ID,
		OrderId:      m.OrderID,
		PhoneMasked:  pii.MaskPhone(m.Phone),
		Template:     templateToProto(m.Template),
		State:        stateToProto(m.State),
		Attempts:     int32(m.Attempts),
		Provider:     m.Provider,
		LastError:    m.LastError,
		CreateTime:   timestamppb.New(m.CreatedAt),
		Redacted:     true,
		DeliveryCode: m.DeliveryCode,
	}
	if !m.ReceiptAt.IsZero() {
		p.ReceiptTime = timestamppb.New(m.ReceiptAt)
	}
	if showText {
		p.Body, p.Redacted = m.Body, m.Redacted
	}
	if !m.SentAt.IsZero() {
		p.SentTime = timestamppb.New(m.SentAt)
	}
	return p
}
