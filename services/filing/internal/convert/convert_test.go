package convert

import (
	"strings"
	"testing"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// The domain's reasons are the contract's ErrorReason values (the domain imports no generated code,
// so this test holds the two together): every value has its constant, and no constant is extra.
func TestReasonsAreTheContracts(t *testing.T) {
	domainReasons := map[string]bool{
		// The order's state, its subject's record, and the limits on submitting it.
		domain.ReasonOrderNotFound: true, domain.ReasonInvalidStateTransition: true, domain.ReasonStaleSubmission: true,
		domain.ReasonOrderInvalid: true, domain.ReasonSubjectNotFound: true, domain.ReasonWebsiteNotInRecord: true,
		domain.ReasonWebsiteAlreadyInRecord: true, domain.ReasonIDMismatchWithRecord: true,
		domain.ReasonPhoneChangeRequiresChangeFiling: true, domain.ReasonRecordMismatch: true,
		domain.ReasonRecordMismatchBudget: true, domain.ReasonPhoneLocked: true, domain.ReasonTooManyOpenChallenges: true,
		domain.ReasonResubmitCooldown: true, domain.ReasonSubmissionsExceeded: true, domain.ReasonNoTenant: true,
		// The spec's shape and limits.
		domain.ReasonMissingSpec: true, domain.ReasonMissingFilingType: true, domain.ReasonInvalidFilingType: true,
		domain.ReasonMissingSubjectID: true, domain.ReasonUnexpectedSubjectID: true, domain.ReasonInvalidSubjectID: true,
		domain.ReasonUnexpectedSubjectChanged: true, domain.ReasonMissingPrincipal: true, domain.ReasonMissingWebsites: true,
		domain.ReasonTooManyWebsites: true, domain.ReasonMissingDomain: true, domain.ReasonInvalidDomain: true,
		domain.ReasonDuplicateDomain: true, domain.ReasonUnexpectedWebsiteChanged: true, domain.ReasonMissingPerson: true,
		domain.ReasonMissingName: true, domain.ReasonTextTooLong: true, domain.ReasonInvalidCharacters: true,
		domain.ReasonTooManyVerifiers: true,
		// The services' shape, the province and the HK/Macau identity card.
		domain.ReasonInvalidServiceKind: true, domain.ReasonUnexpectedServiceField: true, domain.ReasonMissingAppPlatforms: true,
		domain.ReasonInvalidAppPlatform: true, domain.ReasonInvalidPackageName: true, domain.ReasonInvalidMiniProgramPlatform: true,
		domain.ReasonInvalidMiniProgramAppID: true, domain.ReasonDuplicateService: true, domain.ReasonInvalidProvince: true,
		iddoc.ReasonInvalidHKMacaoID: true, domain.ReasonMissingHKMacaoID: true,
		// The other requests' shape.
		domain.ReasonInvalidState: true, domain.ReasonInvalidReturnReason: true, domain.ReasonTooManyPhoneLocks: true,
		domain.ReasonInvalidPhoneLock: true, domain.ReasonInvalidOutcome: true,
		// The checks every service shares.
		iddoc.ReasonInvalidIDType: true, iddoc.ReasonInvalidIDNumber: true,
		phone.ReasonInvalidPhone: true, phone.ReasonCountryNotAllowed: true,
		orderid.ReasonMissing: true, orderid.ReasonInvalid: true, orderid.ReasonInvalidSubmission: true,
		errs.Reason(idempotency.CheckRequestID(strings.Repeat("r", idempotency.MaxRequestIDLength+1))): true,
		errs.RequestIDReused.Reason:      true,
		pagetoken.ReasonInvalidPageToken: true, pagetoken.ReasonInvalidPageSize: true,
		errs.ReasonTooManyItems: true,
	}
	values := filingv1.ErrorReason(0).Descriptor().Values()
	for i := 1; i < values.Len(); i++ {
		name := rpc.ReasonName(filingv1.ErrorReason(values.Get(i).Number()))
		if !domainReasons[name] {
			t.Errorf("contract reason %s has no domain constant", name)
		}
		delete(domainReasons, name)
	}
	for r := range domainReasons {
		t.Errorf("domain reason %s is not in the contract's ErrorReason", r)
	}
}
