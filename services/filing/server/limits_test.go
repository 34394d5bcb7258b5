package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/net/idna"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/pkg/rpc/rpctest"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
	"github.com/icpverify/icpverify/services/filing/server"
)

// startMemory runs the filing service (memory store) with extra flags and returns a client to it.
// The peers are never called: nothing is submitted.
func startMemory(t *testing.T, flags ...string) filingv1.FilingServiceClient {
	t.Helper()
	addr, peer := rpctest.FreeAddr(t), rpctest.FreeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- server.Run(ctx, append([]string{"--store", "memory", "--grpc-addr", addr, "--verification-addr", peer,
			"--deadline-addr", peer, "--log-level", "error"}, flags...))
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	client := filingv1.NewFilingServiceClient(rpctest.Dial(t, addr))
	waitFor(t, "the server to answer", func() bool {
		_, err := client.GetOrder(context.Background(), &filingv1.GetOrderRequest{OrderId: "ord_none"}, grpc.WaitForReady(true))
		return status.Code(err) == codes.NotFound
	})
	return client
}

func limitsPerson(name, ph string) *filingv1.Person {
	return &filingv1.Person{Name: name, IdType: filingv1.IdDocumentType_ID_DOCUMENT_TYPE_PASSPORT, IdNumber: "E12345678", Phone: ph}
}

func limitsSpec(websites int) *filingv1.OrderSpec {
	s := &filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: "示例公司",
		Principal: limitsPerson("张三", "13812345678")}
	for i := range websites {
		s.Websites = append(s.Websites, &filingv1.Website{Domain: fmt.Sprintf("site%d.cn", i), Person: limitsPerson("李四", "13912345678")})
	}
	return s
}

// biggestSpec is the largest spec the default limits accept: 50 websites with the longest Unicode
// domains (labels of 4-byte letters that still fit 63 punycode characters), every name at its
// limit in 4-byte characters, 20 distinct phones, ID numbers and phones padded with spaces.
func biggestSpec(t *testing.T) *filingv1.OrderSpec {
	t.Helper()
	label := ""
	for n := domain.MaxLabelLength; n > 0 && label == ""; n-- {
		if a, err := idna.Lookup.ToASCII(strings.Repeat("\U00020000", n)); err == nil && len(a) <= domain.MaxLabelLength {
			label = strings.Repeat("\U00020000", n)
		}
	}
	big := func(n int) string { return strings.Repeat("\U00020000", n) }
	pad := func(s string, n int) string { return s + strings.Repeat(" ", n-len(s)) }
	person := func(i int) *filingv1.Person {
		return &filingv1.Person{Name: big(domain.MaxPersonNameLength), IdType: filingv1.IdDocumentType_ID_DOCUMENT_TYPE_PASSPORT,
			IdNumber: pad("E12345678", domain.MaxIDNumberLength), Phone: pad(fmt.Sprintf("+86138%08d", i%domain.DefaultMaxVerifiers), phone.MaxInputLength),
			EmergencyPhone: pad("+8613900000000", phone.MaxInputLength)}
	}
	s := &filingv1.OrderSpec{FilingType: filingv1.FilingType_FILING_TYPE_FIRST_FILING, SubjectName: big(domain.MaxSubjectNameLength),
		Principal: person(0)}
	for i := range domain.DefaultMaxWebsites {
		s.Websites = append(s.Websites, &filingv1.Website{Domain: fmt.Sprintf("%s.%s.%s.w%d", label, label, label, i),
			Name: big(domain.MaxWebsiteNameLength), Person: person(i)})
	}
	return s
}

// TestLimitsThroughGRPC runs the service and checks each limit over a real connection: the biggest
// order the limits accept fits the transport limit; a bigger request is ResourceExhausted (not
// Internal); too many websites, a foreign phone and the configured limits are InvalidArgument with
// the field and reason.
func TestLimitsThroughGRPC(t *testing.T) {
	client := startMemory(t)
	ctx := context.Background()
	create := func(spec *filingv1.OrderSpec) error {
		_, err := client.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: spec})
		return err
	}

	biggest := biggestSpec(t)
	size := proto.Size(&filingv1.CreateOrderRequest{RequestId: strings.Repeat("r", 128), Spec: biggest})
	t.Logf("biggest valid CreateOrder: %d bytes (limit %d)", size, rpc.PublicMaxRecvMsgSize)
	if size > rpc.PublicMaxRecvMsgSize*2/5 {
		t.Fatalf("the biggest valid CreateOrder has %d bytes: too close to the %d-byte limit", size, rpc.PublicMaxRecvMsgSize)
	}
	if err := create(biggest); err != nil {
		t.Fatalf("biggest valid order: %v", err)
	}

	oversize := limitsSpec(1)
	oversize.SubjectName = strings.Repeat("x", rpc.PublicMaxRecvMsgSize)
	if err := create(oversize); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("request over %d bytes: %v, want ResourceExhausted", rpc.PublicMaxRecvMsgSize, err)
	}

	wantInvalid := func(what string, err error, field, reason string) {
		t.Helper()
		if status.Code(err) != codes.InvalidArgument || rpc.Field(err) != field || rpc.Reason(err) != reason {
			t.Errorf("%s: %v (field %q, reason %q), want InvalidArgument %s %s", what, err, rpc.Field(err), rpc.Reason(err), field, reason)
		}
	}
	wantInvalid("51 websites", create(limitsSpec(domain.DefaultMaxWebsites+1)), "spec.websites", domain.ReasonTooManyWebsites)
	foreign := limitsSpec(1)
	foreign.Websites[0].Person.Phone = "+852 5123 4567"
	wantInvalid("Hong Kong phone", create(foreign), "spec.websites[0].person.phone", phone.ReasonCountryNotAllowed)
	long := limitsSpec(1)
	long.Websites[0].Name = strings.Repeat("网", domain.MaxWebsiteNameLength+1)
	wantInvalid("long website name", create(long), "spec.websites[0].name", domain.ReasonTextTooLong)
	script := limitsSpec(1)
	script.Websites[0].Domain = "<script>.cn"
	wantInvalid("markup in a domain", create(script), "spec.websites[0].domain", domain.ReasonInvalidDomain)

	// UpdateOrder goes through the same rules.
	created, err := client.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: limitsSpec(1)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = client.UpdateOrder(ctx, &filingv1.UpdateOrderRequest{OrderId: created.GetOrder().GetOrderId(), Spec: limitsSpec(domain.DefaultMaxWebsites + 1)})
	wantInvalid("update to 51 websites", err, "spec.websites", domain.ReasonTooManyWebsites)
}

// TestConfiguredLimits: the flags change the limits; bad values refuse to start.
func TestConfiguredLimits(t *testing.T) {
	client := startMemory(t, "--max-websites-per-order", "3", "--max-verifiers-per-order", "2", "--phone-country-codes", "86,852")
	ctx := context.Background()
	_, err := client.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: limitsSpec(4)})
	if status.Code(err) != codes.InvalidArgument || rpc.Reason(err) != domain.ReasonTooManyWebsites {
		t.Errorf("4 websites with --max-websites-per-order=3: %v", err)
	}
	spec := limitsSpec(2)
	spec.Websites[1].Person.Phone = "+852 5123 4567" // principal, website 0, website 1: three phones
	_, err = client.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: spec})
	if status.Code(err) != codes.InvalidArgument || rpc.Reason(err) != domain.ReasonTooManyVerifiers || rpc.Field(err) != "spec.websites[1].person.phone" {
		t.Errorf("3 verifiers with --max-verifiers-per-order=2: %v (field %q)", err, rpc.Field(err))
	}
	spec.Websites[0].Person.Phone = "+852 5123 4567" // an allowed country now; two phones, two verifiers
	if _, err := client.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: spec}); err != nil {
		t.Errorf("+852 with --phone-country-codes=86,852: %v", err)
	}

	for _, bad := range [][]string{{"--max-websites-per-order", "0"}, {"--max-verifiers-per-order", "101"}, {"--phone-country-codes", "abc"}} {
		args := append([]string{"--store", "memory", "--grpc-addr", rpctest.FreeAddr(t), "--log-level", "error"}, bad...)
		if err := server.Run(context.Background(), args); err == nil || !strings.Contains(err.Error(), bad[0]) {
			t.Errorf("Run %v: %v, want an error naming %s", bad, err, bad[0])
		}
	}
}

// TestRateFlags: --create-rate and --create-burst reach the edge (without portal auth the bucket is
// the caller's IP); a record-mismatch budget without a window refuses to start.
func TestRateFlags(t *testing.T) {
	client := startMemory(t, "--create-rate", "0.001", "--create-burst", "1")
	ctx := context.Background()
	if _, err := client.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: limitsSpec(1)}); err != nil {
		t.Fatal(err)
	}
	_, err := client.CreateOrder(ctx, &filingv1.CreateOrderRequest{Spec: limitsSpec(1)})
	if status.Code(err) != codes.ResourceExhausted || rpc.Reason(err) != rpc.ReasonRateLimited {
		t.Fatalf("second CreateOrder with --create-burst=1: %v, want RATE_LIMITED", err)
	}
	for _, bad := range [][]string{{"--record-mismatch-window", "0"}, {"--submit-rate", "-1"}} {
		args := append([]string{"--store", "memory", "--grpc-addr", rpctest.FreeAddr(t), "--log-level", "error"}, bad...)
		if err := server.Run(context.Background(), args); err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(bad[0], "--")) {
			t.Errorf("Run %v: %v, want an error naming %s", bad, err, bad[0])
		}
	}
}
