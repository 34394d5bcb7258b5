package grpcapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
	"github.com/icpverify/icpverify/services/filing/internal/grpcapi"
	"github.com/icpverify/icpverify/services/filing/internal/store"
)

// TestEveryReasonIsDeclared drives every error a caller can cause through gRPC (tenants a and b by
// API key, the PostgreSQL engine): each answer has the gRPC code and the declared ErrorReason value
// its case names, and every declared value is reached, so the contract's list is the service's whole
// vocabulary. Small limits make the limits cheap to reach: the handlers take orders of at most 2
// websites and 2 verifiers, the use cases submit only 1 website (so a stored order of 2 fails the
// current rules), 1 pending verification per phone, 1 submission per order a day and 1 record
// mismatch per tenant an hour.
func TestEveryReasonIsDeclared(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	pool := pgtest.NewSchema(t, "filing_reasons", store.Migrations, outbox.Migrations, idempotency.Migrations)
	st := app.New(store.New(pool, clock.NewFake(t0), nil), app.Config{
		Rules: domain.Rules{MaxWebsites: 1}, MaxOpenChallengesPerPhone: 1,
		Submits: domain.SubmitLimits{MaxPerDay: 1}, Mismatches: domain.MismatchBudget{Max: 1, Window: time.Hour}})
	srv := rpctest.ServeTenants(t, []string{"a", "b"}, func(s *rpc.Server) {
		grpcapi.Register(s.Public(), s.Internal(), st, domain.Rules{MaxWebsites: 2, MaxVerifiers: 2})
	})
	pub, in := filingv1.NewFilingServiceClient(srv.Public), filingv1.NewFilingInternalServiceClient(srv.Internal)
	bg := context.Background()
	a, b := rpctest.As(bg, "a"), rpctest.As(bg, "b")
	subject := approvedSubject(t, a, pub, in)

	// phones returns validSpec with its principal on phone n and its website's person on phone n+1,
	// so each case's verifiers are pending on phones of their own.
	phones := func(n int) *filingv1.OrderSpec {
		s := validSpec()
		s.Principal.Phone, s.Websites[0].Person.Phone = fmt.Sprintf("+86137%08d", n), fmt.Sprintf("+86137%08d", n+1)
		return s
	}
	edit := func(s *filingv1.OrderSpec, change func(s *filingv1.OrderSpec)) *filingv1.OrderSpec {
		change(s)
		return s
	}
	create := func(ctx context.Context, s *filingv1.OrderSpec) string {
		t.Helper()
		r, err := pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: s})
		if err != nil {
			t.Fatalf("create %v: %v", s, err)
		}
		return r.GetOrder().GetOrderId()
	}
	submit := func(ctx context.Context, id string) error {
		_, err := pub.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{OrderId: id})
		return err
	}
	submitted := func(ctx context.Context, s *filingv1.OrderSpec) string {
		t.Helper()
		id := create(ctx, s)
		if err := submit(ctx, id); err != nil {
			t.Fatalf("submit %s: %v", id, err)
		}
		return id
	}
	giveBack := func(id string, reason filingv1.ReturnReason, locks ...*filingv1.PhoneLock) {
		t.Helper()
		if _, err := in.ReturnOrder(bg, &filingv1.ReturnOrderRequest{OrderId: id, Submission: 1, Reason: reason, PhoneLocks: locks}); err != nil {
			t.Fatalf("return %s: %v", id, err)
		}
	}
	createErr := func(ctx context.Context, s *filingv1.OrderSpec) func() error {
		return func() error { _, err := pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: s}); return err }
	}
	// onRecord is an order of ft on the approved subject naming its website, whose person change edits.
	onRecord := func(ft filingv1.FilingType, change func(w *filingv1.Website)) *filingv1.OrderSpec {
		w := proto.Clone(validSpec().GetWebsites()[0]).(*filingv1.Website)
		change(w)
		return &filingv1.OrderSpec{FilingType: ft, SubjectId: subject, Websites: []*filingv1.Website{w}}
	}
	wrongID := func(w *filingv1.Website) { w.Person.IdNumber = validSpec().GetPrincipal().GetIdNumber() }
	// withService is validSpec listing an APP (edited by change) instead of its website.
	withService := func(change func(sv *filingv1.Service)) *filingv1.OrderSpec {
		s := validSpec()
		sv := &filingv1.Service{Kind: filingv1.ServiceKind_SERVICE_KIND_APP, Name: "示例APP", Person: s.Websites[0].Person,
			AppPlatforms: []*filingv1.AppPlatformId{{Platform: filingv1.AppPlatform_APP_PLATFORM_ANDROID, PackageOrBundleId: "com.example.app"}}}
		change(sv)
		s.Websites, s.Services = nil, []*filingv1.Service{sv}
		return s
	}
	hkPrincipal := func(s *filingv1.OrderSpec) {
		s.Principal.IdType, s.Principal.IdNumber = filingv1.IdDocumentType_ID_DOCUMENT_TYPE_HK_MACAO_PERMIT, "H12345678"
	}
	lockUntil := timestamppb.New(t0.Add(time.Hour))

	type reasonCase struct {
		want filingv1.ErrorReason
		code codes.Code
		call func() error
	}
	const (
		invalid      = codes.InvalidArgument
		precondition = codes.FailedPrecondition
		exhausted    = codes.ResourceExhausted
	)
	cases := []reasonCase{
		{filingv1.ErrorReason_ERROR_REASON_ORDER_NOT_FOUND, codes.NotFound, func() error {
			_, err := pub.GetOrder(a, &filingv1.GetOrderRequest{OrderId: "ord_unknown"})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_STATE_TRANSITION, precondition, func() error {
			id := create(a, phones(10))
			if _, err := pub.CancelOrder(a, &filingv1.CancelOrderRequest{OrderId: id}); err != nil {
				return err
			}
			_, err := pub.CancelOrder(a, &filingv1.CancelOrderRequest{OrderId: id})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_STALE_SUBMISSION, precondition, func() error {
			_, err := in.MarkVerified(bg, &filingv1.MarkVerifiedRequest{OrderId: create(a, phones(10)), Submission: 1})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_ORDER_INVALID, precondition, func() error {
			two := edit(phones(20), func(s *filingv1.OrderSpec) {
				w := proto.Clone(s.Websites[0]).(*filingv1.Website)
				w.Domain = "second.cn"
				s.Websites = append(s.Websites, w) // the same person: still 2 verifiers
			})
			return submit(a, create(a, two))
		}},
		{filingv1.ErrorReason_ERROR_REASON_SUBJECT_NOT_FOUND, codes.NotFound, createErr(a,
			&filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_CHANGE_ACCESS, SubjectId: "sub_unknown"})},
		{filingv1.ErrorReason_ERROR_REASON_WEBSITE_NOT_IN_RECORD, precondition, func() error {
			return submit(a, create(a, &filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_CHANGE_ACCESS, SubjectId: subject,
				Websites: []*filingv1.Website{{Domain: "elsewhere.cn"}}}))
		}},
		{filingv1.ErrorReason_ERROR_REASON_WEBSITE_ALREADY_IN_RECORD, precondition, func() error {
			return submit(a, create(a, onRecord(filingv1.FilingType_FILING_TYPE_ADD_WEBSITE, func(*filingv1.Website) {})))
		}},
		{filingv1.ErrorReason_ERROR_REASON_ID_MISMATCH_WITH_RECORD, precondition, func() error {
			return submit(a, create(a, onRecord(filingv1.FilingType_FILING_TYPE_CHANGE_ACCESS, wrongID)))
		}},
		{filingv1.ErrorReason_ERROR_REASON_PHONE_CHANGE_REQUIRES_CHANGE_FILING, precondition, func() error {
			return submit(a, create(a, onRecord(filingv1.FilingType_FILING_TYPE_CHANGE_ACCESS,
				func(w *filingv1.Website) { w.Person.Phone = "+8613700000030" })))
		}},
		// b holds no record: its ADD_ACCESS that does not match takes b's one mismatch of the hour...
		{filingv1.ErrorReason_ERROR_REASON_RECORD_MISMATCH, precondition, func() error {
			return submit(b, create(b, onRecord(filingv1.FilingType_FILING_TYPE_ADD_ACCESS, wrongID)))
		}},
		// ...so naming a record b does not hold is refused before anything is compared.
		{filingv1.ErrorReason_ERROR_REASON_RECORD_MISMATCH_BUDGET, exhausted,
			createErr(b, onRecord(filingv1.FilingType_FILING_TYPE_ADD_ACCESS, func(*filingv1.Website) {}))},
		{filingv1.ErrorReason_ERROR_REASON_PHONE_LOCKED, precondition, func() error {
			locked := submitted(a, phones(40))
			giveBack(locked, filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS,
				&filingv1.PhoneLock{Phone: "+8613700000040", Until: lockUntil})
			return submit(a, create(a, edit(phones(42), func(s *filingv1.OrderSpec) { s.Principal.Phone = "+8613700000040" })))
		}},
		{filingv1.ErrorReason_ERROR_REASON_RESUBMIT_COOLDOWN, precondition, func() error {
			id := submitted(a, phones(50))
			giveBack(id, filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS)
			return submit(a, id)
		}},
		{filingv1.ErrorReason_ERROR_REASON_TOO_MANY_OPEN_CHALLENGES, precondition, func() error {
			submitted(a, phones(60))
			return submit(a, create(a, edit(phones(62), func(s *filingv1.OrderSpec) { s.Principal.Phone = "+8613700000060" })))
		}},
		{filingv1.ErrorReason_ERROR_REASON_SUBMISSIONS_EXCEEDED, exhausted, func() error {
			id := submitted(a, phones(70))
			giveBack(id, filingv1.ReturnReason_RETURN_REASON_VERIFICATION_TIMEOUT)
			return submit(a, id)
		}},
		// The edge gives every public caller a tenant: the use cases' own guard answers a call without one.
		{filingv1.ErrorReason_ERROR_REASON_NO_TENANT, codes.PermissionDenied, func() error {
			_, _, err := st.ListOrders(bg, domain.Actor{}, domain.StateUnspecified, 0, "")
			return rpc.ToStatus(zap.NewNop(), "ListOrders", err)
		}},

		{filingv1.ErrorReason_ERROR_REASON_MISSING_SPEC, invalid, createErr(a, nil)},
		{filingv1.ErrorReason_ERROR_REASON_MISSING_FILING_TYPE, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.FilingType = 0 }))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_FILING_TYPE, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.FilingType = 42 }))},
		{filingv1.ErrorReason_ERROR_REASON_MISSING_SUBJECT_ID, invalid, createErr(a,
			&filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_CHANGE_ACCESS})},
		{filingv1.ErrorReason_ERROR_REASON_UNEXPECTED_SUBJECT_ID, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.SubjectId = subject }))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_SUBJECT_ID, invalid, createErr(a,
			&filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_CHANGE_ACCESS, SubjectId: strings.Repeat("s", domain.MaxSubjectIDLength+1)})},
		{filingv1.ErrorReason_ERROR_REASON_UNEXPECTED_SUBJECT_CHANGED, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.SubjectChanged = true }))},
		{filingv1.ErrorReason_ERROR_REASON_MISSING_PRINCIPAL, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Principal = nil }))},
		{filingv1.ErrorReason_ERROR_REASON_MISSING_WEBSITES, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Websites = nil }))},
		{filingv1.ErrorReason_ERROR_REASON_TOO_MANY_WEBSITES, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) {
			for _, d := range []string{"b.cn", "c.cn"} {
				w := proto.Clone(s.Websites[0]).(*filingv1.Website)
				w.Domain = d
				s.Websites = append(s.Websites, w)
			}
		}))},
		{filingv1.ErrorReason_ERROR_REASON_MISSING_DOMAIN, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Websites[0].Domain = " " }))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_DOMAIN, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Websites[0].Domain = `a".cn` }))},
		{filingv1.ErrorReason_ERROR_REASON_DUPLICATE_DOMAIN, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) {
			s.Websites = append(s.Websites, proto.Clone(s.Websites[0]).(*filingv1.Website))
		}))},
		{filingv1.ErrorReason_ERROR_REASON_UNEXPECTED_WEBSITE_CHANGED, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Websites[0].Changed = true }))},
		{filingv1.ErrorReason_ERROR_REASON_MISSING_PERSON, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Websites[0].Person = nil }))},
		{filingv1.ErrorReason_ERROR_REASON_MISSING_NAME, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Principal.Name = " " }))},
		{filingv1.ErrorReason_ERROR_REASON_TEXT_TOO_LONG, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) {
			s.SubjectName = strings.Repeat("公", domain.MaxSubjectNameLength+1)
		}))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_CHARACTERS, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Principal.Name = "张\x1b[31m三" }))},
		{filingv1.ErrorReason_ERROR_REASON_TOO_MANY_VERIFIERS, invalid, createErr(a, edit(phones(80), func(s *filingv1.OrderSpec) {
			w := proto.Clone(s.Websites[0]).(*filingv1.Website)
			w.Domain, w.Person.Phone = "second.cn", "+8613700000082"
			s.Websites = append(s.Websites, w)
		}))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_ID_TYPE, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Principal.IdType = 42 }))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_ID_NUMBER, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) {
			s.Principal.IdNumber = "110101199003074510" // wrong check digit
		}))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_PHONE, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Principal.Phone = "12345" }))},
		{filingv1.ErrorReason_ERROR_REASON_PHONE_COUNTRY_NOT_ALLOWED, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) {
			s.Principal.Phone = "+852 5123 4567"
		}))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_SERVICE_KIND, invalid, createErr(a, withService(func(sv *filingv1.Service) { sv.Kind = 42 }))},
		{filingv1.ErrorReason_ERROR_REASON_UNEXPECTED_SERVICE_FIELD, invalid, createErr(a, withService(func(sv *filingv1.Service) { sv.Domain = "a.cn" }))},
		{filingv1.ErrorReason_ERROR_REASON_MISSING_APP_PLATFORMS, invalid, createErr(a, withService(func(sv *filingv1.Service) { sv.AppPlatforms = nil }))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_APP_PLATFORM, invalid, createErr(a, withService(func(sv *filingv1.Service) { sv.AppPlatforms[0].Platform = 0 }))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_PACKAGE_NAME, invalid, createErr(a, withService(func(sv *filingv1.Service) {
			sv.AppPlatforms[0].PackageOrBundleId = "shop"
		}))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_MINI_PROGRAM_PLATFORM, invalid, createErr(a, withService(func(sv *filingv1.Service) {
			sv.Kind, sv.AppPlatforms, sv.MiniProgramAppId = filingv1.ServiceKind_SERVICE_KIND_MINI_PROGRAM, nil, "wx0123456789abcdef"
		}))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_MINI_PROGRAM_APP_ID, invalid, createErr(a, withService(func(sv *filingv1.Service) {
			sv.Kind, sv.AppPlatforms, sv.MiniProgramPlatform = filingv1.ServiceKind_SERVICE_KIND_MINI_PROGRAM, nil, filingv1.MiniProgramPlatform_MINI_PROGRAM_PLATFORM_WECHAT
			sv.MiniProgramAppId = "wx123"
		}))},
		{filingv1.ErrorReason_ERROR_REASON_DUPLICATE_SERVICE, invalid, func() error {
			s := withService(func(*filingv1.Service) {})
			s.Services = append(s.Services, proto.Clone(s.Services[0]).(*filingv1.Service))
			return createErr(a, s)()
		}},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_PROVINCE, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) { s.Province = "台湾" }))},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_HK_MACAO_ID_NUMBER, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) {
			s.Principal.HkMacaoIdNumber = "A123456(3)" // on a resident ID card holder
		}))},
		{filingv1.ErrorReason_ERROR_REASON_MISSING_HK_MACAO_ID_NUMBER, invalid, createErr(a, edit(validSpec(), func(s *filingv1.OrderSpec) {
			hkPrincipal(s)
			s.Province = "浙江"
		}))},

		{filingv1.ErrorReason_ERROR_REASON_INVALID_STATE, invalid, func() error {
			_, err := pub.ListOrders(a, &filingv1.ListOrdersRequest{State: 42})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_RETURN_REASON, invalid, func() error {
			_, err := in.ReturnOrder(bg, &filingv1.ReturnOrderRequest{OrderId: "ord_x", Submission: 1})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_TOO_MANY_PHONE_LOCKS, invalid, func() error {
			locks := make([]*filingv1.PhoneLock, domain.CeilingMaxVerifiers+1)
			for i := range locks {
				locks[i] = &filingv1.PhoneLock{Phone: fmt.Sprintf("+86138%08d", i), Until: lockUntil}
			}
			_, err := in.ReturnOrder(bg, &filingv1.ReturnOrderRequest{OrderId: "ord_x", Submission: 1,
				Reason: filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS, PhoneLocks: locks})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_PHONE_LOCK, invalid, func() error {
			_, err := in.ReturnOrder(bg, &filingv1.ReturnOrderRequest{OrderId: "ord_x", Submission: 1,
				Reason:     filingv1.ReturnReason_RETURN_REASON_TOO_MANY_FAILED_ATTEMPTS,
				PhoneLocks: []*filingv1.PhoneLock{{Phone: "13800000000", Until: lockUntil}}}) // not E.164
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_TOO_MANY_ITEMS, invalid, func() error {
			_, err := in.MarkVerifiedBatch(bg, &filingv1.MarkVerifiedBatchRequest{
				Requests: make([]*filingv1.MarkVerifiedRequest, errs.MaxBatchItems+1)})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_OUTCOME, invalid, func() error {
			_, err := in.RecordReviewOutcome(bg, &filingv1.RecordReviewOutcomeRequest{OrderId: "ord_x"})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_MISSING_ORDER_ID, invalid, func() error {
			_, err := pub.GetOrder(a, &filingv1.GetOrderRequest{})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_ORDER_ID, invalid, func() error {
			_, err := pub.GetOrder(a, &filingv1.GetOrderRequest{OrderId: strings.Repeat("o", orderid.MaxLength+1)})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_SUBMISSION, invalid, func() error {
			_, err := in.MarkVerified(bg, &filingv1.MarkVerifiedRequest{OrderId: "ord_x"})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_REQUEST_ID, invalid, func() error {
			_, err := pub.CreateOrder(a, &filingv1.CreateOrderRequest{RequestId: strings.Repeat("r", idempotency.MaxRequestIDLength+1), Spec: validSpec()})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_REQUEST_ID_REUSED, codes.AlreadyExists, func() error {
			if _, err := pub.CreateOrder(a, &filingv1.CreateOrderRequest{RequestId: "once", Spec: validSpec()}); err != nil {
				return err
			}
			_, err := pub.CreateOrder(a, &filingv1.CreateOrderRequest{RequestId: "once",
				Spec: edit(validSpec(), func(s *filingv1.OrderSpec) { s.SubjectName = "另一家" })})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_PAGE_TOKEN, invalid, func() error {
			_, err := pub.ListOrders(a, &filingv1.ListOrdersRequest{PageToken: "nope"})
			return err
		}},
		{filingv1.ErrorReason_ERROR_REASON_INVALID_PAGE_SIZE, invalid, func() error {
			_, err := pub.ListOrders(a, &filingv1.ListOrdersRequest{PageSize: -1})
			return err
		}},
	}
	reached := map[filingv1.ErrorReason]bool{}
	for _, tc := range cases {
		err := tc.call()
		got := rpc.Reason(err)
		if _, declared := filingv1.ErrorReason_value["ERROR_REASON_"+got]; !declared || got == "" {
			t.Errorf("%s: reason %q of %v is not a declared ErrorReason", tc.want, got, err)
		}
		if status.Code(err) != tc.code || !rpc.HasReason(err, tc.want) {
			t.Errorf("%s: got %v, want %s %s", tc.want, err, tc.code, rpc.ReasonName(tc.want))
		}
		if reached[tc.want] {
			t.Errorf("%s has two cases", tc.want)
		}
		reached[tc.want] = true
	}
	for v, name := range filingv1.ErrorReason_name {
		if r := filingv1.ErrorReason(v); r != filingv1.ErrorReason_ERROR_REASON_UNSPECIFIED && !reached[r] {
			t.Errorf("declared %s is never returned here: drop it from the contract or add its case", name)
		}
	}
}
