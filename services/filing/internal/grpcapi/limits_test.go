package grpcapi_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// TestLimitsNameTheField: every count and length limit of the public API answers InvalidArgument
// with the field and the reason, on the PostgreSQL engine.
func TestLimitsNameTheField(t *testing.T) {
	t.Parallel()
	c := start(t)
	ctx := context.Background()
	spec := func(edit func(s *filingv1.OrderSpec)) *filingv1.OrderSpec {
		s := validSpec()
		edit(s)
		return s
	}
	create := func(s *filingv1.OrderSpec) func() error {
		return func() error { _, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: s}); return err }
	}
	created, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: validSpec()})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetOrder().GetOrderId()
	tooMany := spec(func(s *filingv1.OrderSpec) {
		for i := len(s.Websites); i <= domain.DefaultMaxWebsites; i++ {
			w := proto.Clone(s.Websites[0]).(*filingv1.Website)
			w.Domain = fmt.Sprintf("site%d.cn", i)
			s.Websites = append(s.Websites, w)
		}
	})
	manyPhones := spec(func(s *filingv1.OrderSpec) {
		for i := range domain.DefaultMaxVerifiers {
			w := proto.Clone(s.Websites[0]).(*filingv1.Website)
			w.Domain, w.Person.Phone = fmt.Sprintf("site%d.cn", i), fmt.Sprintf("+86137%08d", i)
			s.Websites = append(s.Websites, w)
		}
	})
	tests := []struct {
		name          string
		call          func() error
		field, reason string
	}{
		{"51 websites", create(tooMany), "spec.websites", domain.ReasonTooManyWebsites},
		{"21 verifiers", create(manyPhones), fmt.Sprintf("spec.websites[%d].person.phone", domain.DefaultMaxVerifiers-1), domain.ReasonTooManyVerifiers},
		{"foreign phone", create(spec(func(s *filingv1.OrderSpec) { s.Principal.Phone = "+852 5123 4567" })), "spec.principal.phone",
			phone.ReasonCountryNotAllowed},
		{"long subject name", create(spec(func(s *filingv1.OrderSpec) { s.SubjectName = strings.Repeat("公", domain.MaxSubjectNameLength+1) })),
			"spec.subject_name", domain.ReasonTextTooLong},
		{"control character in a name", create(spec(func(s *filingv1.OrderSpec) { s.Principal.Name = "张\x1b[31m三" })),
			"spec.principal.name", domain.ReasonInvalidCharacters},
		{"long domain", create(spec(func(s *filingv1.OrderSpec) { s.Websites[0].Domain = strings.Repeat("a", 64) + ".cn" })),
			"spec.websites[0].domain", domain.ReasonInvalidDomain},
		{"quote in a domain", create(spec(func(s *filingv1.OrderSpec) { s.Websites[0].Domain = `a".cn` })),
			"spec.websites[0].domain", domain.ReasonInvalidDomain},
		{"update to 51 websites", func() error {
			_, err := c.pub.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{OrderId: id, Spec: tooMany})
			return err
		}, "spec.websites", domain.ReasonTooManyWebsites},
		{"long request id", func() error {
			_, err := c.pub.CreateOrder(ctx, &filingv1.CreateOrderRequest{RequestId: strings.Repeat("r", 129), Spec: validSpec()})
			return err
		}, "request_id", rpc.ReasonName(filingv1.ErrorReason_ERROR_REASON_INVALID_REQUEST_ID)},
		{"long cancel reason", func() error {
			_, err := c.pub.CancelOrder(ctx, &filingv1.CancelOrderRequest{OrderId: id, Reason: strings.Repeat("因", domain.MaxReasonLength+1)})
			return err
		}, "reason", domain.ReasonTextTooLong},
		{"long page token", func() error {
			_, err := c.pub.ListOrders(ctx, &filingv1.ListOrdersRequest{PageToken: strings.Repeat("A", pagetoken.MaxTokenLength+1)})
			return err
		}, "page_token", pagetoken.ReasonInvalidPageToken},
		{"long review comment", func() error {
			_, err := c.in.RecordReviewOutcome(ctx, &filingv1.RecordReviewOutcomeRequest{OrderId: id,
				Outcome: filingv1.ReviewOutcome_REVIEW_OUTCOME_REJECTED, Comment: strings.Repeat("x", domain.MaxCommentLength+1)})
			return err
		}, "comment", domain.ReasonTextTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if status.Code(err) != codes.InvalidArgument || rpc.Field(err) != tt.field || rpc.Reason(err) != tt.reason {
				t.Fatalf("err = %v (field %q reason %q), want InvalidArgument %q %q", err, rpc.Field(err), rpc.Reason(err), tt.field, tt.reason)
			}
		})
	}
}
