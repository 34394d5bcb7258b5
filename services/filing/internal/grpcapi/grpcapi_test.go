package grpcapi_test

import (
	"context"
	"strings"
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

type clients struct {
	pub filingv1.FilingServiceClient
	in  filingv1.FilingInternalServiceClient
}

// start serves both filing services on 127.0.0.1:0 with the PostgreSQL store.
func start(t *testing.T) clients {
	t.Helper()
	pool := pgtest.NewSchema(t, "filing_api", store.Migrations, outbox.Migrations, idempotency.Migrations)
	st := app.New(store.New(pool, clock.NewFake(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)), nil), app.Config{})
	conn := rpctest.Serve(t, func(srv *rpc.Server) { grpcapi.Register(srv.Public(), srv.Internal(), st, domain.Rules{}) })
	return clients{pub: filingv1.NewFilingServiceClient(conn), in: filingv1.NewFilingInternalServiceClient(conn)}
}

func validSpec() *filingv1.OrderSpec {
	return &filingv1.OrderSpec{
		FilingType:  filingv1.FilingType_FILING_TYPE_FIRST_FILING,
		SubjectName: "示例公司",
		Principal: &filingv1.Person{Name: "张三", IdType: filingv1.IdDocumentType_ID_DOCUMENT_TYPE_RESIDENT_ID_CARD,
			IdNumber: "110101199003074514", Phone: "13812345678", EmergencyPhone: "13712345678"},
		Websites: []*filingv1.Website{
			{Domain: "example.cn", Person: &filingv1.Person{Name: "李四", IdType: filingv1.IdDocumentType_ID_DOCUMENT_TYPE_RESIDENT_ID_CARD,
				IdNumber: "11010519491231002x", Phone: "+86 139 1234 5678"}},
		},
	}
}

func TestCreateOrderRetryReturnsSameOrder(t *testing.T) {
	t.Parallel()
	c := start(t)
	ctx := context.Background()
	req := &filingv1.CreateOrderRequest{RequestId: "create-1", Spec: validSpec()}
	a, err := c.pub.CreateOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.pub.CreateOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if a.GetOrder().GetOrderId() == "" || !proto.Equal(a, b) {
		t.Fatalf("retry returned another answer: %v vs %v", a, b)
	}
	o := a.GetOrder()
	if o.GetState() != filingv1.OrderState_ORDER_STATE_DRAFT || len(o.GetOrderId()) < 10 || o.GetOrderId()[:4] != "ord_" {
		t.Fatalf("order = %v", o)
	}
	p := o.GetSpec().GetPrincipal()
	if p.GetPhone() != "138****5678" || p.GetEmergencyPhone() != "137****5678" || p.GetIdNumber() != "1****************4" {
		t.Fatalf("principal not masked: %v", p)
	}
	// Same request_id, different request: refused.
	other := &filingv1.CreateOrderRequest{RequestId: "create-1", Spec: validSpec()}
	other.Spec.SubjectName = "另一家"
	_, err = c.pub.CreateOrder(ctx, other)
	if status.Code(err) != codes.AlreadyExists || !rpc.HasReason(err, filingv1.ErrorReason_ERROR_REASON_REQUEST_ID_REUSED) {
		t.Fatalf("reused request id: %v", err)
	}
	// A new request_id creates a second order.
	d, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: "create-2", Spec: validSpec()})
	if err != nil || d.GetOrder().GetOrderId() == o.GetOrderId() {
		t.Fatalf("second order: %v %v", d, err)
	}
}

func TestBadInputNamesTheField(t *testing.T) {
	t.Parallel()
	c := start(t)
	ctx := context.Background()
	badPhone := validSpec()
	badPhone.Websites[0].Person.Phone = "12345"
	dup := validSpec()
	dup.Websites = append(dup.Websites, proto.Clone(dup.Websites[0]).(*filingv1.Website))
	dup.Websites[1].Domain = "EXAMPLE.cn"
	badID := validSpec()
	badID.Principal.IdNumber = "110101199003074510"
	access := validSpec()
	access.FilingType, access.SubjectId, access.SubjectChanged = filingv1.FilingType_FILING_TYPE_ADD_ACCESS, "sub_1", true
	websiteChanged := validSpec()
	websiteChanged.Websites[0].Changed = true
	tests := []struct {
		name   string
		call   func() error
		field  string
		reason filingv1.ErrorReason
	}{
		{"no spec", func() error { _, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{}); return err }, "spec", filingv1.ErrorReason_ERROR_REASON_MISSING_SPEC},
		{"bad website phone", func() error {
			_, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: badPhone})
			return err
		}, "spec.websites[0].person.phone", filingv1.ErrorReason_ERROR_REASON_INVALID_PHONE},
		{"duplicate domain", func() error { _, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: dup}); return err },
			"spec.websites[1].domain", filingv1.ErrorReason_ERROR_REASON_DUPLICATE_DOMAIN},
		{"bad id check digit", func() error { _, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: badID}); return err },
			"spec.principal.id_number", filingv1.ErrorReason_ERROR_REASON_INVALID_ID_NUMBER},
		{"subject changed on add access", func() error { _, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: access}); return err },
			"spec.subject_changed", filingv1.ErrorReason_ERROR_REASON_UNEXPECTED_SUBJECT_CHANGED},
		{"website changed on first filing", func() error {
			_, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: websiteChanged})
			return err
		}, "spec.websites[0].changed", filingv1.ErrorReason_ERROR_REASON_UNEXPECTED_WEBSITE_CHANGED},
		{"no order id", func() error { _, err := c.pub.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{}); return err },
			"order_id", filingv1.ErrorReason_ERROR_REASON_MISSING_ORDER_ID},
		{"no submission", func() error {
			_, err := c.in.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{OrderId: "ord_x"})
			return err
		}, "submission", filingv1.ErrorReason_ERROR_REASON_INVALID_SUBMISSION},
		{"no return reason", func() error {
			_, err := c.in.ReturnOrder(ctx, &filingv1.ReturnOrderRequest{OrderId: "ord_x", Submission: 1})
			return err
		}, "reason", filingv1.ErrorReason_ERROR_REASON_INVALID_RETURN_REASON},
		{"negative page size", func() error {
			_, err := c.pub.ListOrders(ctx, &filingv1.ListOrdersRequest{PageSize: -1})
			return err
		}, "page_size", filingv1.ErrorReason_ERROR_REASON_INVALID_PAGE_SIZE},
		{"foreign page token", func() error {
			_, err := c.pub.ListOrders(ctx, &filingv1.ListOrdersRequest{PageToken: "not-a-token"})
			return err
		}, "page_token", filingv1.ErrorReason_ERROR_REASON_INVALID_PAGE_TOKEN},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != codes.InvalidArgument || rpc.Field(err) != tt.field || !rpc.HasReason(err, tt.reason) {
				t.Fatalf("err = %v (field %q reason %q), want InvalidArgument %q %s", err, rpc.Field(err), rpc.Reason(err), tt.field, rpc.ReasonName(tt.reason))
			}
			if s := status.Convert(err).Message(); len(s) == 0 {
				t.Fatal("empty message")
			}
		})
	}
}

func TestUnknownOrderIsNotFound(t *testing.T) {
	t.Parallel()
	c := start(t)
	ctx := context.Background()
	calls := map[string]func() error{
		"GetOrder": func() error {
			_, err := c.pub.GetOrder(ctx, &filingv1.GetOrderRequest{OrderId: "ord_unknown"})
			return err
		},
		"SubmitOrder": func() error {
			_, err := c.pub.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{OrderId: "ord_unknown"})
			return err
		},
		"CancelOrder": func() error {
			_, err := c.pub.CancelOrder(ctx, &filingv1.CancelOrderRequest{OrderId: "ord_unknown"})
			return err
		},
		"MarkVerified": func() error {
			_, err := c.in.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{OrderId: "ord_unknown", Submission: 1})
			return err
		},
	}
	for name, call := range calls {
		err := call()
		if status.Code(err) != codes.NotFound || rpc.Reason(err) != domain.ReasonOrderNotFound {
			t.Errorf("%s: %v, want NotFound ORDER_NOT_FOUND", name, err)
		}
	}
	// An unknown subject_id named in the request is NotFound too.
	spec := &filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_CHANGE_ACCESS, SubjectId: "sub_unknown"}
	_, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: spec})
	if status.Code(err) != codes.NotFound || rpc.Reason(err) != domain.ReasonSubjectNotFound {
		t.Errorf("CreateOrder of an unknown subject: %v, want NotFound SUBJECT_NOT_FOUND", err)
	}
}

func TestFlowThroughTheAPI(t *testing.T) {
	t.Parallel()
	c := start(t)
	ctx := context.Background()
	created, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: "c", Spec: validSpec()})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetOrder().GetOrderId()
	sub, err := c.pub.SubmitOrder(ctx, &filingv1.SubmitOrderRequest{RequestId: "s", OrderId: id})
	if err != nil || sub.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_AWAITING_VERIFICATION {
		t.Fatalf("submit: %v %v", sub, err)
	}
	v := sub.GetOrder().GetVerifiers()
	if len(v) != 2 || v[0].GetPhoneMasked() != "138****5678" || v[0].GetRoles()[0] != "principal" || v[1].GetRoles()[0] != "website:example.cn" {
		t.Fatalf("verifiers = %v", v)
	}
	_, err = c.pub.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{OrderId: id, Spec: validSpec()})
	if status.Code(err) != codes.FailedPrecondition || rpc.Reason(err) != domain.ReasonInvalidStateTransition {
		t.Fatalf("update while awaiting: %v", err)
	}
	_, err = c.in.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{OrderId: id, Submission: 2})
	if status.Code(err) != codes.FailedPrecondition || rpc.Reason(err) != domain.ReasonStaleSubmission {
		t.Fatalf("stale: %v", err)
	}
	if _, err := c.in.MarkVerified(ctx, &filingv1.MarkVerifiedRequest{RequestId: "verification:mark-verified:x:1", OrderId: id, Submission: 1}); err != nil {
		t.Fatal(err)
	}
	rev, err := c.in.RecordReviewOutcome(ctx, &filingv1.RecordReviewOutcomeRequest{OrderId: id, Outcome: filingv1.ReviewOutcome_REVIEW_OUTCOME_APPROVED})
	if err != nil || rev.GetOrder().GetState() != filingv1.OrderState_ORDER_STATE_APPROVED || rev.GetOrder().GetSpec().GetSubjectId() == "" {
		t.Fatalf("approve: %v %v", rev, err)
	}
	got, err := c.pub.GetOrder(ctx, &filingv1.GetOrderRequest{OrderId: id})
	if err != nil {
		t.Fatal(err)
	}
	var actors []string
	for _, h := range got.GetOrder().GetHistory() {
		actors = append(actors, h.GetActor()+":"+h.GetTo().String())
	}
	want := "[portal:dev (ip:127.0.0.1):ORDER_STATE_DRAFT portal:dev (ip:127.0.0.1):ORDER_STATE_AWAITING_VERIFICATION verification:ORDER_STATE_UNDER_REVIEW administration:ORDER_STATE_APPROVED]"
	if got := "[" + strings.Join(actors, " ") + "]"; got != want {
		t.Fatalf("history = %s, want %s", got, want)
	}
	list, err := c.pub.ListOrders(ctx, &filingv1.ListOrdersRequest{State: filingv1.OrderState_ORDER_STATE_APPROVED})
	if err != nil || len(list.GetOrders()) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
}
