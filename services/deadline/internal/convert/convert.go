// Package convert turns timers into their protobuf form and back. Both the gRPC handlers (responses)
// and the store (answers kept for request_id replays) need it, so it lives apart from either.
package convert

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

var stateToProto = map[domain.State]deadlinev1.DeadlineState{
	domain.Pending:   deadlinev1.DeadlineState_DEADLINE_STATE_PENDING,
	domain.Fired:     deadlinev1.DeadlineState_DEADLINE_STATE_FIRED,
	domain.Cancelled: deadlinev1.DeadlineState_DEADLINE_STATE_CANCELLED,
}

// StateToProto maps a domain state to the enum.
func StateToProto(s domain.State) deadlinev1.DeadlineState { return stateToProto[s] }

// StateFromProto maps the enum to a domain state; UNSPECIFIED (and unknown values) give "".
func StateFromProto(s deadlinev1.DeadlineState) domain.State {
	for k, v := range stateToProto {
		if v == s {
			return k
		}
	}
	return ""
}

// KindToProto maps a timer kind to the enum.
func KindToProto(k domain.Kind) deadlinev1.DeadlineKind {
	if k == domain.KindNoonResend {
		return deadlinev1.DeadlineKind_DEADLINE_KIND_NOON_RESEND
	}
	return deadlinev1.DeadlineKind_DEADLINE_KIND_CLOSE
}

// ToProto is the API form of a timer.
func ToProto(d domain.Deadline) *deadlinev1.Deadline {
	out := &deadlinev1.Deadline{
		OrderId:    d.OrderID,
		Submission: d.Submission,
		DueTime:    timestamppb.New(d.DueAt),
		State:      StateToProto(d.State),
		Attempts:   d.Attempts,
		LastError:  d.LastError,
		Closed:     d.Closed,
		Kind:       KindToProto(d.Kind),
	}
	if !d.FiredAt.IsZero() {
		out.FireTime = timestamppb.New(d.FiredAt)
	}
	return out
}

// FromProto is the inverse of ToProto for the fields the API carries (a replayed answer).
func FromProto(p *deadlinev1.Deadline) domain.Deadline {
	d := domain.Deadline{
		Key:       domain.Key{OrderID: p.GetOrderId(), Submission: p.GetSubmission()},
		State:     StateFromProto(p.GetState()),
		Attempts:  p.GetAttempts(),
		LastError: p.GetLastError(),
		Closed:    p.GetClosed(),
	}
	if p.GetKind() == deadlinev1.DeadlineKind_DEADLINE_KIND_NOON_RESEND {
		d.Kind = domain.KindNoonResend
	}
	if p.GetDueTime() != nil {
		d.DueAt = p.GetDueTime().AsTime()
	}
	if p.GetFireTime() != nil {
		d.FiredAt = p.GetFireTime().AsTime()
	}
	return d
}
