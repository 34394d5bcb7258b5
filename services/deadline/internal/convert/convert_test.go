package convert

import (
	"strings"
	"testing"

	"github.com/icpverify/icpverify/pkg/errs"
	deadlinev1 "github.com/icpverify/icpverify/pkg/gen/icp/deadline/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

// The reasons this service returns are the contract's ErrorReason values (the domain imports no
// generated code, so this test holds the two together): its own domain constants and those of the
// shared request checks, every value with its constant and no constant extra.
func TestReasonsAreTheContracts(t *testing.T) {
	returned := map[string]bool{
		domain.ReasonNotFound: true, domain.ReasonConflict: true, domain.ReasonInvalidDueTime: true, domain.ReasonInvalidState: true,
		orderid.ReasonMissing: true, orderid.ReasonInvalid: true, orderid.ReasonInvalidSubmission: true,
		errs.Reason(idempotency.CheckRequestID(strings.Repeat("r", idempotency.MaxRequestIDLength+1))): true,
		errs.RequestIDReused.Reason:      true,
		pagetoken.ReasonInvalidPageToken: true, pagetoken.ReasonInvalidPageSize: true,
		errs.ReasonTooManyItems: true,
	}
	values := deadlinev1.ErrorReason(0).Descriptor().Values()
	for i := 1; i < values.Len(); i++ {
		name := rpc.ReasonName(deadlinev1.ErrorReason(values.Get(i).Number()))
		if !returned[name] {
			t.Errorf("contract reason %s has no constant here", name)
		}
		delete(returned, name)
	}
	for r := range returned {
		t.Errorf("reason %s is not in the contract's ErrorReason", r)
	}
}
