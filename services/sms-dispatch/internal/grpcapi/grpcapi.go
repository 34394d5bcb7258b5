// Package grpcapi is the gRPC face of sms-dispatch: it checks requests, converts between proto and
// domain types and calls the store. Errors are domain errors; pkg/rpc turns them into statuses.
// Responses never carry a whole phone number, and the text (which holds the code) only in development
// mode: see Server.ShowText.
package grpcapi

import (
	"context"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	smsv1 "github.com/icpverify/icpverify/pkg/gen/icp/smsdispatch/v1"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/convert"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// Store is what the handlers need; store.Store (PostgreSQL) and memstore.Store implement it.
type Store interface {
	Create(ctx context.Context, m domain.Message) (domain.Message, bool, error)
	Get(ctx context.Context, id string) (domain.Message, error)
	// List reads up to limit messages newest first (domain.Before), only orderID's ("" = all),
	// strictly after after (nil: from the newest).
	List(ctx context.Context, orderID string, after *domain.Position, limit int) ([]domain.Message, error)
}

// Register registers SmsDispatchService on the internal listener (sms-dispatch has no public API).
func Register(_, internal grpc.ServiceRegistrar, s *Server) {
	smsv1.RegisterSmsDispatchServiceServer(internal, s)
}

// Server implements icp.smsdispatch.v1.SmsDispatchService.
type Server struct {
	smsv1.UnimplementedSmsDispatchServiceServer
	Store Store
	Clock clock.Clock
	Log   *zap.Logger
	// ShowText is development mode (--sms-provider=console, which prints every text anyway): responses
	// carry the body in full, and the dispatcher keeps it after sending, so the CLI and tests can read
	// codes. In every other mode no response carries a body, not even while the message is QUEUED
	// (which can be up to a day behind the caps): redacted is true in every response.
	ShowText bool
	// Signature is the 【signature】 rendered into zh-CN texts.
	Signature string
	// Dispatcher, when set, takes new messages straight away (so they need not wait for its poll).
	Dispatcher Dispatcher
}

// Dispatcher is the part of dispatcher.Dispatcher that SendMessage feeds.
type Dispatcher interface {
	// Reserve offers to take the next message in memory: store it claimed until leaseUntil, then
	// Handoff it; or, if it was not stored as new, Release. !ok: store it unclaimed and Wake.
	Reserve(now time.Time) (leaseUntil time.Time, ok bool)
	Handoff(m domain.Message)
	Release()
	Wake()
}

// SendMessage stores the message as QUEUED; the dispatcher sends it. A repeat of a message_id
// returns the stored message and sends nothing.
func (s *Server) SendMessage(ctx context.Context, req *smsv1.SendMessageRequest) (*smsv1.SendMessageResponse, error) {
	in := domain.SendInput{
		MessageID: req.GetMessageId(),
		Phone:     req.GetPhone(),
		Template:  convert.TemplateFromProto(req.GetTemplate()),
		Params:    req.GetParams(),
		Locale:    req.GetLocale(),
		OrderID:   req.GetOrderId(),
		Sequence:  req.GetSequence(),
	}
	if ts := req.GetExpireTime(); ts != nil {
		if err := ts.CheckValid(); err != nil {
			return nil, errs.Invalid("expire_time", domain.ReasonInvalidExpireTime, "expire_time is not a valid timestamp")
		}
		in.ExpireAt = ts.AsTime()
	}
	// The one exception to "the store reads the clock after its locks": Create is a single round trip
	// (locks, insert, commit), and nothing it decides depends on this time. A thread's order is its
	// sequence number, the caps are counted by the dispatcher at send time, and the time only says
	// when the message is due (now) and where ListMessages shows it.
	now := s.Clock.Now().Truncate(time.Microsecond)
	m, err := domain.NewMessage(in, s.Signature, now)
	if err != nil {
		return nil, err
	}
	handed := false
	if s.Dispatcher != nil {
		var leaseUntil time.Time
		if leaseUntil, handed = s.Dispatcher.Reserve(now); handed {
			m.Attempts, m.NextAttempt = 1, leaseUntil // claimed by this process's dispatcher
		}
	}
	createCtx := ctx
	if handed {
		// Stored claimed, the message is this process's to send: a caller that gives up while its
		// batch commits must not leave it hidden for a whole lease (the batch bounds its own time).
		createCtx = context.WithoutCancel(ctx)
	}
	stored, created, err := s.Store.Create(createCtx, m)
	queued := err == nil && created && stored.State == domain.StateQueued
	switch {
	case handed && queued:
		s.Dispatcher.Handoff(stored)
	case handed:
		s.Dispatcher.Release()
	case queued && s.Dispatcher != nil:
		s.Dispatcher.Wake()
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, err
	}
	if created {
		if ce := s.Log.Check(zap.InfoLevel, "message queued"); ce != nil {
			ce.Write(logging.MessageID(stored.ID), logging.Phone(stored.Phone), logging.OrderID(stored.OrderID))
		}
	}
	return &smsv1.SendMessageResponse{Message: convert.Message(stored, s.ShowText)}, nil
}

// GetMessage returns one message.
func (s *Server) GetMessage(ctx context.Context, req *smsv1.GetMessageRequest) (*smsv1.GetMessageResponse, error) {
	if err := domain.CheckMessageID("message_id", req.GetMessageId()); err != nil {
		return nil, err
	}
	m, err := s.Store.Get(ctx, req.GetMessageId())
	if err != nil {
		return nil, err
	}
	return &smsv1.GetMessageResponse{Message: convert.Message(m, s.ShowText)}, nil
}

// ListMessages pages through messages, newest first (page_size default 50, at most 200).
func (s *Server) ListMessages(ctx context.Context, req *smsv1.ListMessagesRequest) (*smsv1.ListMessagesResponse, error) {
	size, err := pagetoken.Size(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	if err := orderid.CheckOptional("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	after, err := decodePage(req.GetPageToken(), req.GetOrderId())
	if err != nil {
		return nil, err
	}
	msgs, err := s.Store.List(ctx, req.GetOrderId(), after, size+1) // one more tells whether a next page exists
	if err != nil {
		return nil, err
	}
	out := &smsv1.ListMessagesResponse{}
	if len(msgs) > size {
		msgs = msgs[:size]
		out.NextPageToken = encodePage(msgs[len(msgs)-1], req.GetOrderId())
	}
	for _, m := range msgs {
		out.Messages = append(out.Messages, convert.Message(m, s.ShowText))
	}
	return out, nil
}
