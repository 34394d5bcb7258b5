package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/clock"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/filing/internal/app"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
	"github.com/icpverify/icpverify/services/filing/internal/grpcapi"
	"github.com/icpverify/icpverify/services/filing/internal/store"
)

// tenantsOnPostgres serves filing to tenants a and b (API keys) on the PostgreSQL engine, with opts on
// the server.
func tenantsOnPostgres(t *testing.T, cfg app.Config, opts ...rpc.ServerOption) (filingv1.FilingServiceClient, filingv1.FilingInternalServiceClient) {
	t.Helper()
	pool := pgtest.NewSchema(t, "filing_records", store.Migrations, outbox.Migrations, idempotency.Migrations)
	st := app.New(store.New(pool, clock.NewFake(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)), nil), cfg)
	srv := rpctest.ServeTenants(t, []string{"a", "b"}, func(s *rpc.Server) {
		grpcapi.Register(s.Public(), s.Internal(), st, domain.Rules{})
	}, opts...)
	return filingv1.NewFilingServiceClient(srv.Public), filingv1.NewFilingInternalServiceClient(srv.Internal)
}

// approvedSubject walks validSpec's first filing of ctx's tenant to APPROVED and returns its subject.
func approvedSubject(t *testing.T, ctx context.Context, pub filingv1.FilingServiceClient, in filingv1.FilingInternalServiceClient) string {
	t.Helper()
	created, err := pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: validSpec()})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetOrder().GetOrderId()
	submitted, err := pub.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{OrderId: id})
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	if _, err := in.MarkVerified(bg, &filingv1.MarkVerifiedRequest{OrderId: id, Submission: submitted.GetOrder().GetSubmission()}); err != nil {
		t.Fatal(err)
	}
	approved, err := in.RecordReviewOutcome(bg, &filingv1.RecordReviewOutcomeRequest{OrderId: id, Outcome: filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED})
	if err != nil || approved.GetOrder().GetSpec().GetSubjectId() == "" {
		t.Fatalf("approve: %v %v", approved, err)
	}
	return approved.GetOrder().GetSpec().GetSubjectId()
}

// The test "a record mismatch is generic", through real gRPC with two API keys: b, which does
// not hold a's record, gets for two different mismatches of its ADD_ACCESS orders (another person's ID
// number for a website of the record, a website the record lacks) the very same status, message and
// details: FailedPrecondition RECORD_MISMATCH, no field. a, the holder, gets the detail. b's
// CHANGE_ACCESS on a's record is answered exactly as one on an unknown subject.
func TestARecordMismatchIsGeneric(t *testing.T) {
	t.Parallel()
	pub, in := tenantsOnPostgres(t, app.Config{})
	a, b := rpctest.As(context.Background(), "a"), rpctest.As(context.Background(), "b")
	subject := approvedSubject(t, a, pub, in)
	website := validSpec().GetWebsites()[0]
	addAccess := func(edit func(w *filingv1.Website)) *filingv1.OrderSpec {
		w := proto.Clone(website).(*filingv1.Website)
		edit(w)
		return &filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_ADD_ACCESS, SubjectId: subject, Websites: []*filingv1.Website{w}}
	}
	wrongID := addAccess(func(w *filingv1.Website) { w.Person.IdNumber = validSpec().GetPrincipal().GetIdNumber() })
	notInRecord := addAccess(func(w *filingv1.Website) { w.Domain = "elsewhere.cn" })
	submit := func(ctx context.Context, spec *filingv1.OrderSpec) *status.Status {
		t.Helper()
		created, err := pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: spec})
		if err != nil {
			t.Fatal(err)
		}
		_, err = pub.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{OrderId: created.GetOrder().GetOrderId()})
		return status.Convert(err)
	}
	one, other := submit(b, wrongID), submit(b, notInRecord)
	if one.Code() != codes.FailedPrecondition || rpc.Reason(one.Err()) != domain.ReasonRecordMismatch || rpc.Field(one.Err()) != "" {
		t.Fatalf("b's wrong ID number: %v, want FailedPrecondition %s without a field", one.Proto(), domain.ReasonRecordMismatch)
	}
	if one.Message() != "the order does not match the subject's approved record" {
		t.Errorf("message %q", one.Message())
	}
	if !proto.Equal(one.Proto(), other.Proto()) {
		t.Fatalf("two mismatches told apart:\n%v\n%v", one.Proto(), other.Proto())
	}
	if got := submit(a, wrongID); rpc.Reason(got.Err()) != domain.ReasonIDMismatchWithRecord {
		t.Errorf("the holder's wrong ID number: %v, want %s", got.Proto(), domain.ReasonIDMismatchWithRecord)
	}
	if got := submit(a, notInRecord); rpc.Reason(got.Err()) != domain.ReasonWebsiteNotInRecord {
		t.Errorf("the holder's website not in the record: %v, want %s", got.Proto(), domain.ReasonWebsiteNotInRecord)
	}

	change := func(subject string) *status.Status {
		_, err := pub.CreateOrder(b, &filingv1.CreateOrderRequest{Spec: &filingv1.OrderSpec{
			FilingType: filingv1.FilingType_FILING_TYPE_CHANGE_ACCESS, SubjectId: subject}})
		return status.Convert(err)
	}
	theirs, unknown := change(subject), change("sub_0123456789abcdef0123456789abcdef")
	if theirs.Code() != codes.NotFound || !proto.Equal(theirs.Proto(), unknown.Proto()) {
		t.Fatalf("b's CHANGE_ACCESS on a's record: %v, want exactly the unknown subject's %v", theirs.Proto(), unknown.Proto())
	}
}

// TestRecordMismatchBudgetThroughGRPC: past its budget b's next comparison is ResourceExhausted
// RECORD_MISMATCH_BUDGET with RetryInfo.
func TestRecordMismatchBudgetThroughGRPC(t *testing.T) {
	t.Parallel()
	pub, in := tenantsOnPostgres(t, app.Config{Mismatches: domain.MismatchBudget{Max: 1, Window: time.Hour}})
	a, b := rpctest.As(context.Background(), "a"), rpctest.As(context.Background(), "b")
	subject := approvedSubject(t, a, pub, in)
	spec := &filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_ADD_ACCESS, SubjectId: subject,
		Websites: []*filingv1.Website{{Domain: "elsewhere.cn", Person: validSpec().GetWebsites()[0].GetPerson()}}}
	created, err := pub.CreateOrder(b, &filingv1.CreateOrderRequest{Spec: spec})
	if err != nil {
		t.Fatal(err)
	}
	submit := &filingv1.SubmitOrderRequest{OrderId: created.GetOrder().GetOrderId()}
	if _, err := pub.SubmitOrder(b, submit); rpc.Reason(err) != domain.ReasonRecordMismatch {
		t.Fatalf("first mismatch: %v", err)
	}
	_, err = pub.SubmitOrder(b, submit)
	if status.Code(err) != codes.ResourceExhausted || rpc.Reason(err) != domain.ReasonRecordMismatchBudget || rpc.RetryDelay(err) != time.Hour {
		t.Fatalf("past the budget: %v (retry %v), want ResourceExhausted %s retrying in 1h", err, rpc.RetryDelay(err), domain.ReasonRecordMismatchBudget)
	}
}

// TestRateLimitsPerTenant: CreateOrder, UpdateOrder and SubmitOrder are limited per tenant at the
// edge: past a's burst a's next call is ResourceExhausted RATE_LIMITED with RetryInfo, and b still has
// its own bucket.
func TestRateLimitsPerTenant(t *testing.T) {
	t.Parallel()
	slow := grpcapi.Rate{PerSecond: 0.001, Burst: 2}
	pub, _ := tenantsOnPostgres(t, app.Config{}, grpcapi.RateLimits(slow, slow, slow)...)
	a, b := rpctest.As(context.Background(), "a"), rpctest.As(context.Background(), "b")
	const unknown = "ord_0123456789abcdef0123456789abcdef"
	calls := map[string]func(ctx context.Context) error{
		"CreateOrder": func(ctx context.Context) error {
			_, err := pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: validSpec()})
			return err
		},
		"UpdateOrder": func(ctx context.Context) error {
			_, err := pub.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{OrderId: unknown, Spec: validSpec()})
			return err
		},
		"SubmitOrder": func(ctx context.Context) error {
			_, err := pub.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{OrderId: unknown})
			return err
		},
	}
	for name, call := range calls {
		for i := range slow.Burst {
			if err := call(a); status.Code(err) == codes.ResourceExhausted {
				t.Fatalf("%s %d within the burst: %v", name, i+1, err)
			}
		}
		err := call(a)
		if status.Code(err) != codes.ResourceExhausted || rpc.Reason(err) != rpc.ReasonRateLimited || rpc.RetryDelay(err) <= 0 {
			t.Errorf("%s past a's burst: %v (retry %v), want ResourceExhausted %s with RetryInfo", name, err, rpc.RetryDelay(err), rpc.ReasonRateLimited)
		}
		if err := call(b); status.Code(err) == codes.ResourceExhausted {
			t.Errorf("%s of b: %v, want b's own bucket", name, err)
		}
	}
	if _, err := pub.GetOrder(a, &filingv1.GetOrderRequest{OrderId: unknown}); status.Code(err) != codes.NotFound {
		t.Errorf("GetOrder is not limited: %v", err)
	}
}
