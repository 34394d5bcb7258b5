// Package grpcapi is the gRPC edge of the verification service: it checks the shape of each request,
// turns it into domain input and calls the store. Errors are domain errors; pkg/rpc maps them to
// statuses in its interceptor.
package grpcapi

import (
	"context"
	"time"

	"google.golang.org/grpc"

	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/phone"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// Store is what the handlers need from storage; the PostgreSQL store (package store) and the
// in-memory one for the one-process dev server (package memstore) implement it. Mutating calls take the request so the
// store can answer a retried request_id with the first answer, in the same transaction as the effect.
type Store interface {
	OpenSession(ctx context.Context, req *pb.OpenSessionRequest, spec domain.OpenSpec) (*pb.OpenSessionResponse, error)
	Verify(ctx context.Context, in domain.VerifyInput) (*pb.VerifyResponse, error)
	ResendByPhone(ctx context.Context, req *pb.ResendCodeRequest, phone, tail string) (*pb.ResendCodeResponse, error)
	ResendVerifier(ctx context.Context, req *pb.ResendVerifierCodeRequest) (*pb.ResendVerifierCodeResponse, error)
	CloseIfIncomplete(ctx context.Context, req *pb.CloseIfIncompleteRequest) (*pb.CloseIfIncompleteResponse, error)
	CancelSession(ctx context.Context, req *pb.CancelSessionRequest) (*pb.CancelSessionResponse, error)
	AutoResend(ctx context.Context, req *pb.AutoResendRequest) (*pb.AutoResendResponse, error)
	Status(ctx context.Context, orderID string) (*pb.VerificationStatus, error)
	GetLink(ctx context.Context, token string) (*pb.GetLinkResponse, error)
	ReportDelivery(ctx context.Context, req *pb.ReportDeliveryRequest, r domain.DeliveryReport) (*pb.ReportDeliveryResponse, error)
}

// Register registers the public VerificationService and the internal VerificationInternalService.
func Register(public, internal grpc.ServiceRegistrar, pub *Public, in *Internal) {
	pb.RegisterVerificationServiceServer(public, pub)
	pb.RegisterVerificationInternalServiceServer(internal, in)
}

// Public serves VerificationService, the API portal backends call.
type Public struct {
	pb.UnimplementedVerificationServiceServer
	Store Store
	// MinResponseTime is the earliest Verify and ResendCode answer, counted from the request's arrival.
	// A phone with pending challenges costs database writes (failure counts) and an unknown phone none;
	// without a floor the response time would tell an outsider which phones are being verified. 0: off.
	MinResponseTime time.Duration
	// Sleep waits d or until ctx ends; nil is a real timer. Tests replace it so they need not wait.
	Sleep func(ctx context.Context, d time.Duration)
	// Metrics counts the outcomes; nil counts nothing.
	Metrics *Metrics
	// Phones lists the country calling codes filing accepts (--phone-country-codes; zero: +86 only):
	// a number of any other country has no challenge, and is answered as a malformed one.
	Phones phone.Countries
}

// hold makes a public answer wait until MinResponseTime has passed since start. This is wall-clock
// time on purpose: it is about what a caller can measure, not about the business clock.
func (h *Public) hold(ctx context.Context, start time.Time) {
	rest := h.MinResponseTime - time.Since(start)
	if h.MinResponseTime <= 0 || rest <= 0 {
		return
	}
	sleep := h.Sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	sleep(ctx, rest)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Internal serves VerificationInternalService, called by filing, deadline and operators.
type Internal struct {
	pb.UnimplementedVerificationInternalServiceServer
	Store Store
	// Metrics counts the resends; nil counts nothing.
	Metrics *Metrics
}

// Verify checks phone + code + ID tail. Only the shape of the input gets a specific error; every
// other failure is the uniform VERIFICATION_NOT_MATCHED from the store.
func (h *Public) Verify(ctx context.Context, req *pb.VerifyRequest) (resp *pb.VerifyResponse, err error) {
	defer h.hold(ctx, time.Now())
	defer func() { h.Metrics.verified(resp, err) }()
	in, err := domain.NormalizeVerify(h.Phones, req.GetPhone(), req.GetCode(), req.GetIdTail(), req.GetLinkToken())
	if err != nil {
		return nil, err
	}
	return h.Store.Verify(ctx, in)
}

// GetLink shows the challenge an SMS link names while it can be checked; every other link is the
// uniform LINK_NOT_FOUND. It is held to MinResponseTime like Verify: the time must not tell a live
// link from a dead one.
func (h *Public) GetLink(ctx context.Context, req *pb.GetLinkRequest) (*pb.GetLinkResponse, error) {
	defer h.hold(ctx, time.Now())
	if err := domain.CheckLinkToken("token", req.GetToken()); err != nil {
		return nil, err
	}
	return h.Store.GetLink(ctx, req.GetToken())
}

// ResendCode sends a new code to the verifier identified by phone + ID tail. Every "no" is the uniform
// VERIFICATION_NOT_MATCHED (a wrong tail also counts as a failed check) unless phone and tail matched a
// verifier: only then may the answer say "too soon", "limit reached" or "not pending".
func (h *Public) ResendCode(ctx context.Context, req *pb.ResendCodeRequest) (_ *pb.ResendCodeResponse, err error) {
	defer h.hold(ctx, time.Now())
	defer func() { h.Metrics.resent(err) }()
	p, err := domain.NormalizePhone(h.Phones, "phone", req.GetPhone())
	if err != nil {
		return nil, err
	}
	tail, err := iddoc.NormalizeTail("id_tail", req.GetIdTail())
	if err != nil {
		return nil, err
	}
	return h.Store.ResendByPhone(ctx, req, p, tail)
}

// GetVerificationStatus returns the progress of an order's latest submission.
func (h *Public) GetVerificationStatus(ctx context.Context, req *pb.GetVerificationStatusRequest) (*pb.GetVerificationStatusResponse, error) {
	if err := orderid.Check("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	st, err := h.Store.Status(ctx, req.GetOrderId())
	if err != nil {
		return nil, err
	}
	return &pb.GetVerificationStatusResponse{Status: st}, nil
}

// OpenSession creates a submission's challenges and sends the codes; idempotent by (order_id, submission).
func (h *Internal) OpenSession(ctx context.Context, req *pb.OpenSessionRequest) (*pb.OpenSessionResponse, error) {
	spec := domain.OpenSpec{OrderID: req.GetOrderId(), Submission: req.GetSubmission(), Locale: req.GetLocale(), Tenant: req.GetTenant()}
	if req.GetDeadlineAt() != nil {
		if err := req.GetDeadlineAt().CheckValid(); err != nil {
			return nil, errs.Invalid("deadline_at", domain.ReasonInvalidDeadline, "deadline_at is not a valid timestamp")
		}
		spec.DeadlineAt = req.GetDeadlineAt().AsTime()
	}
	for _, v := range req.GetVerifiers() {
		spec.Verifiers = append(spec.Verifiers, domain.VerifierSpec{Phone: v.GetPhone(), Roles: v.GetRoles(), Tails: v.GetIdTails()})
	}
	spec, err := domain.NormalizeOpen(spec)
	if err != nil {
		return nil, err
	}
	return h.Store.OpenSession(ctx, req, spec)
}

// ResendVerifierCode sends a new code to one verifier of an order, under the same limits as ResendCode.
func (h *Internal) ResendVerifierCode(ctx context.Context, req *pb.ResendVerifierCodeRequest) (_ *pb.ResendVerifierCodeResponse, err error) {
	defer func() { h.Metrics.resent(err) }()
	if err := orderid.Check("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	if req.GetVerifierId() == "" {
		return nil, errs.Invalid("verifier_id", domain.ReasonMissingVerifierID, "verifier_id is required")
	}
	if len(req.GetVerifierId()) > domain.MaxVerifierIDLength {
		return nil, errs.Invalid("verifier_id", domain.ReasonInvalidVerifierID, "verifier_id is longer than %d characters",
			domain.MaxVerifierIDLength)
	}
	return h.Store.ResendVerifier(ctx, req)
}

// CloseIfIncomplete closes a session at or after its deadline unless every verifier passed.
func (h *Internal) CloseIfIncomplete(ctx context.Context, req *pb.CloseIfIncompleteRequest) (*pb.CloseIfIncompleteResponse, error) {
	if err := orderid.CheckSubmission(req.GetOrderId(), req.GetSubmission()); err != nil {
		return nil, err
	}
	return h.Store.CloseIfIncomplete(ctx, req)
}

// AutoResend makes the noon resend of one submission (the deadline service's noon timer).
func (h *Internal) AutoResend(ctx context.Context, req *pb.AutoResendRequest) (*pb.AutoResendResponse, error) {
	if err := idempotency.CheckRequestID(req.GetRequestId()); err != nil {
		return nil, err
	}
	if err := orderid.CheckSubmission(req.GetOrderId(), req.GetSubmission()); err != nil {
		return nil, err
	}
	return h.Store.AutoResend(ctx, req)
}

// CancelSession closes an open session because its order was cancelled.
func (h *Internal) CancelSession(ctx context.Context, req *pb.CancelSessionRequest) (*pb.CancelSessionResponse, error) {
	if err := orderid.CheckSubmission(req.GetOrderId(), req.GetSubmission()); err != nil {
		return nil, err
	}
	return h.Store.CancelSession(ctx, req)
}

// ReportDelivery applies sms-dispatch's report on a code message: FAILED and UNDELIVERED void that
// code, DELIVERED and AT_RISK change what its status shows.
func (h *Internal) ReportDelivery(ctx context.Context, req *pb.ReportDeliveryRequest) (*pb.ReportDeliveryResponse, error) {
	if err := idempotency.CheckRequestID(req.GetRequestId()); err != nil {
		return nil, err
	}
	r := domain.DeliveryReport{MessageID: req.GetMessageId(), OrderID: req.GetOrderId(), Reason: req.GetReason()}
	r.State = convert.DeliveryStateFromProto(req.GetState())
	if err := domain.CheckDeliveryReport(r); err != nil {
		return nil, err
	}
	return h.Store.ReportDelivery(ctx, req, r)
}
