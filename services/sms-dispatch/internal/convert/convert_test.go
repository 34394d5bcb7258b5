package convert

import (
	"testing"

	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// The reasons this service returns are the contract's ErrorReason values (the domain imports no
// generated code, so this test holds the two together): its own domain constants and those of the
// shared request checks, every value with its constant and no constant extra.
func TestReasonsAreTheContracts(t *testing.T) {
	returned := map[string]bool{
		domain.ReasonMessageNotFound: true, domain.ReasonMessageIDReused: true, domain.ReasonInvalidMessageID: true,
		domain.ReasonInvalidTemplate: true, domain.ReasonMissingParam: true, domain.ReasonInvalidParam: true,
		domain.ReasonUnsupportedLocale: true, domain.ReasonInvalidExpireTime: true, domain.ReasonMessageTooLong: true,
		phone.ReasonInvalidPhone: true, orderid.ReasonInvalid: true,
		pagetoken.ReasonInvalidPageToken: true, pagetoken.ReasonInvalidPageSize: true,
	}
	values := smsv1.ErrorReason(0).Descriptor().Values()
	for i := 1; i < values.Len(); i++ {
		name := rpc.ReasonName(smsv1.ErrorReason(values.Get(i).Number()))
		if !returned[name] {
			t.Errorf("contract reason %s has no constant here", name)
		}
		delete(returned, name)
	}
	for r := range returned {
		t.Errorf("reason %s is not in the contract's ErrorReason", r)
	}
}
