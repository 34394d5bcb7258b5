package app

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// budgeted runs call, first without leave to compare with a record the actor's tenant does not hold
// (granted false, unless there is no budget). When call reports domain.ForeignRecord (an ADD_ACCESS
// naming a record held elsewhere), the tenant's record-mismatch budget decides before call runs again
// with leave:
//   - orderID set (SubmitOrder, which compares): one of the budget is reserved for this comparison in
//     its own transaction, before it runs, so a failed submission's rollback cannot undo the count and
//     racing comparisons cannot pass the budget. A mismatch keeps the reservation: it is the count. Any
//     other outcome gives it back (after a crash in between it stays counted: failing closed);
//   - orderID "" (CreateOrder, UpdateOrder: they name the record but compare nothing): the budget must
//     not be spent, and nothing is counted.
//
// A spent budget is ResourceExhausted RECORD_MISMATCH_BUDGET, before anything is compared.
func (a *App) budgeted(ctx context.Context, actor domain.Actor, orderID string, call func(granted bool) (proto.Message, error)) (proto.Message, error) {
	b := a.cfg.Mismatches
	resp, err := call(!b.On())
	f, foreign := domain.AsForeign(err)
	if !foreign {
		return resp, err
	}
	if orderID == "" {
		if err := a.engine.CheckMismatchBudget(ctx, actor.Tenant, b); err != nil {
			return nil, err
		}
		return call(true)
	}
	id, err := a.engine.ReserveMismatch(ctx, actor.Tenant, orderID, f.SubjectID, b)
	if err != nil {
		return nil, err
	}
	resp, err = call(true)
	if errs.Reason(err) != domain.ReasonRecordMismatch {
		// The answer stands whatever the release does: a reservation left behind only counts against
		// the tenant until it leaves the window.
		if rerr := a.engine.ReleaseMismatch(context.WithoutCancel(ctx), id); rerr != nil {
			a.cfg.Log.Warn("record mismatch budget: reservation not given back", zap.String("tenant", actor.Tenant),
				zap.String("order_id", orderID), zap.Error(rerr))
		}
	}
	return resp, err
}

// auditMismatch writes the audit line of an order that did not match a record its tenant does not
// hold: who and which order and subject, never what differed (no ID numbers, no phones).
func (a *App) auditMismatch(actor domain.Actor, orderID, subjectID string) {
	a.cfg.Log.Warn("audit: order does not match a record its tenant does not hold", zap.String("event", "record_mismatch"),
		zap.String("tenant", actor.Tenant), zap.String("caller", actor.ID), zap.String("order_id", orderID),
		zap.String("subject_id", subjectID))
}
