package app

import (
	"context"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/rpc"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// OpenSession creates the session of (order_id, submission) with one challenge per verifier and
// owes one SMS per challenge. A repeat returns the existing session and draws nothing; a newer
// submission cancels the order's open session; an older one is refused as stale; one arriving at or
// after its deadline is recorded as timed out and the order is returned at once.
func (a *App) OpenSession(ctx context.Context, req *pb.OpenSessionRequest, spec domain.OpenSpec) (*pb.OpenSessionResponse, error) {
	// The idempotency table keeps a hash of the request: give it keyed digests of phones and tails.
	o := op[*pb.OpenSessionResponse](pb.VerificationInternalService_OpenSession_FullMethodName, req.GetRequestId(),
		convert.RedactOpenRequest(req, a.hasher))
	for _, v := range spec.Verifiers {
		o.Phones = append(o.Phones, v.Phone)
	}
	return answer[*pb.OpenSessionResponse](a.engine.UpdateOrder(ctx, o, spec.OrderID,
		func(o *domain.OrderSessions, now time.Time) (Change, error) {
			var latest int32
			if l := o.Latest(); l != nil {
				latest = l.Submission
			}
			existing := o.Find(spec.Submission)
			action, err := domain.DecideOpen(now, existing != nil, latest, spec, o.PhoneFailures)
			if err != nil {
				return Change{}, err
			}
			if action == domain.OpenReplay {
				return Change{Answer: &pb.OpenSessionResponse{Status: convert.Status(existing.Session, existing.Challenges)}}, nil
			}
			sess, chs, tails, codes, err := domain.NewSession(now, uuid.NewString, spec, action, a.hasher, a.rand)
			if err != nil {
				return Change{}, err
			}
			links, err := a.drawLinks(chs)
			if err != nil {
				return Change{}, err
			}
			for i := range o.Sessions {
				if o.Sessions[i].State == domain.SessionOpen {
					o.Sessions[i].State = domain.SessionCancelled // superseded by this submission
				}
			}
			o.Add(domain.SessionRecord{Session: sess, Challenges: chs, Tails: tails})
			if action == domain.OpenPhoneLocked {
				phone, until, _ := domain.LockedPhone(now, spec, o.PhoneFailures)
				a.log.Warn("session not opened: a verifier's phone is locked by its failure budget; order returned",
					logging.OrderID(sess.OrderID), logging.Submission(sess.Submission), logging.Phone(phone), zap.Time("locked_until", until))
				return Change{Answer: &pb.OpenSessionResponse{Status: convert.Status(sess, nil)},
					Messages: convert.PhoneLockedMessages(sess, phone, until)}, nil
			}
			if sess.State == domain.SessionTimedOut {
				a.log.Warn("session opened after its deadline: recorded as timed out, order returned", logging.OrderID(sess.OrderID),
					logging.Submission(sess.Submission), zap.Time("deadline_at", sess.DeadlineAt))
			} else {
				a.log.Info("session opened", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission),
					zap.Int("verifiers", len(spec.Verifiers)), zap.Time("deadline_at", sess.DeadlineAt))
			}
			msgs := convert.OpenMessages(sess, chs, codes, links)
			if at, ok := domain.NoonResendAt(sess.CreatedAt, sess.DeadlineAt, a.noon); ok && sess.State == domain.SessionOpen {
				msgs = append(msgs, convert.ScheduleNoonMessage(sess, at))
			}
			return Change{Answer: &pb.OpenSessionResponse{Status: convert.Status(sess, chs)}, Messages: msgs}, nil
		}))
}

// CancelSession closes an open session because its order was cancelled; other states stay. When the
// session does not exist yet (the cancel overtook OpenSession in the outboxes) a CANCELLED tombstone
// is written, so the late OpenSession finds it and sends no codes for a cancelled order.
func (a *App) CancelSession(ctx context.Context, req *pb.CancelSessionRequest) (*pb.CancelSessionResponse, error) {
	o := op[*pb.CancelSessionResponse](pb.VerificationInternalService_CancelSession_FullMethodName, req.GetRequestId(), req)
	return answer[*pb.CancelSessionResponse](a.engine.UpdateOrder(ctx, o, req.GetOrderId(),
		func(o *domain.OrderSessions, now time.Time) (Change, error) {
			rec := o.Find(req.GetSubmission())
			switch {
			case rec == nil:
				rec = o.Add(domain.SessionRecord{Session: domain.Tombstone(now, uuid.NewString(), req.GetOrderId(), req.GetSubmission())})
			case rec.State == domain.SessionOpen:
				rec.State = domain.SessionCancelled
			}
			a.log.Info("session cancelled", logging.OrderID(rec.OrderID), logging.Submission(rec.Submission),
				zap.String("state", string(rec.State)))
			return Change{Answer: &pb.CancelSessionResponse{Status: convert.Status(rec.Session, rec.Challenges)}}, nil
		}))
}

// ResendVerifier sends a new code to one verifier of an order's latest submission.
func (a *App) ResendVerifier(ctx context.Context, req *pb.ResendVerifierCodeRequest) (*pb.ResendVerifierCodeResponse, error) {
	o := op[*pb.ResendVerifierCodeResponse](pb.VerificationInternalService_ResendVerifierCode_FullMethodName, req.GetRequestId(), req)
	return answer[*pb.ResendVerifierCodeResponse](a.engine.UpdateOrder(ctx, o, req.GetOrderId(),
		func(o *domain.OrderSessions, now time.Time) (Change, error) {
			notFound := errs.NotFound(domain.ReasonVerifierNotFound, "no such verifier for this order")
			rec := o.Latest()
			if rec == nil {
				return Change{}, notFound
			}
			c := rec.Challenge(req.GetVerifierId())
			if c == nil {
				return Change{}, notFound
			}
			r, msg, err := a.resend(now, rec.Session, c)
			if err != nil {
				return Change{}, err
			}
			return Change{Answer: &pb.ResendVerifierCodeResponse{Resend: r}, Messages: []outbox.Message{msg}}, nil
		}))
}

// ResendByPhone sends a new code to the pending verifier of an open session identified by phone +
// ID tail. A wrong ID tail for a phone with pending challenges counts as a failed check on each of
// them (see domain.DecideResendByPhone) and answers the uniform VERIFICATION_NOT_MATCHED, like an
// unknown phone. Only a caller who named a matching phone + tail learns more (too soon, limit, not
// pending): they have proved they know both.
func (a *App) ResendByPhone(ctx context.Context, req *pb.ResendCodeRequest, phone, tail string) (*pb.ResendCodeResponse, error) {
	// The idempotency table keeps a hash of the request: give it keyed digests, not the phone and tail.
	if err := a.Mismatches.check(ctx, phone); err != nil {
		return nil, err
	}
	scope := scopeOf(ctx)
	// The idempotency key binds the request id to the caller's tenant, the phone and the tail: an id
	// reused with another (phone, tail) is a new request, checked and counted like any other, so a
	// known request id is no oracle on (phone, tail), and tenants never share ids (review L1).
	requestID := req.GetRequestId()
	if requestID != "" {
		if err := idempotency.CheckRequestID(requestID); err != nil {
			return nil, err
		}
		requestID = a.hasher.Fingerprint("resend", domain.TenantOf(scope.Tenant), requestID, phone, tail)
	}
	fingerprint := &pb.ResendCodeRequest{RequestId: requestID, Phone: a.hasher.Fingerprint(phone, tail)}
	var locked []domain.Challenge
	var sessions map[string]domain.Session
	resp, err := a.engine.UpdatePhone(ctx, op[*pb.ResendCodeResponse](pb.VerificationService_ResendCode_FullMethodName,
		requestID, fingerprint), phone,
		func(p *domain.PhoneChallenges, now time.Time) (Change, error) {
			locked, sessions = nil, p.Sessions
			visible := domain.Visible(scope, p.Sessions, p.Challenges)
			cands := make([]domain.ResendCandidate, len(visible))
			for j, i := range visible {
				c := p.Challenges[i]
				sess := p.Sessions[c.SessionID]
				cands[j] = domain.ResendCandidate{Check: domain.CandidateOf(sess, c),
					TailMatches: a.hasher.TailMatches(c.ID, p.Tails[c.ID], tail), CreatedAt: sess.CreatedAt}
			}
			if len(visible) == 0 {
				a.hasher.Burn("000000", tail)
			}
			found, failures := domain.DecideResendByPhone(now, cands, a.limits.MaxFailedAttempts)
			d := domain.VerifyDecision{Pass: -1, Failures: failures}
			if found >= 0 {
				d.Pass = visible[found]
			}
			pc := domain.DecidePhoneCheck(now, d, p.Failures, a.limits)
			if err := pc.Err(); err != nil {
				return Change{}, err
			}
			if found < 0 {
				e := p.Mismatch(pc, visible)
				for _, i := range e.Locked {
					locked = append(locked, p.Challenges[i])
				}
				return Change{Messages: convert.ReturnedMessages(p.Sessions, phone, e), Err: domain.ErrNotMatched()}, nil
			}
			found = d.Pass
			c := &p.Challenges[found]
			r, msg, err := a.resend(now, p.Sessions[c.SessionID], c)
			if err != nil {
				return Change{}, err
			}
			return Change{Answer: &pb.ResendCodeResponse{Resend: r}, Messages: []outbox.Message{msg}}, nil
		})
	a.Mismatches.recordIfMismatch(ctx, phone, err)
	if errs.Reason(err) == domain.ReasonNotMatched { // only a committed mismatch locks
		for _, c := range locked {
			a.reportLocked(sessions[c.SessionID], c)
		}
	}
	return answer[*pb.ResendCodeResponse](resp, err)
}

// resend applies the limits to verifier c of sess at now and, if allowed, replaces its code (from the
// commit on only the new code passes) and returns the answer and the SMS of the new code.
func (a *App) resend(now time.Time, sess domain.Session, c *domain.Challenge) (*pb.Resend, outbox.Message, error) {
	previous := *c // what became of the replaced code's SMS goes into the answer
	code, err := domain.PrepareResend(now, sess, c, a.limits, a.hasher, a.rand)
	if err != nil {
		return nil, outbox.Message{}, err
	}
	token, err := domain.DrawLink(c) // the new code's link; the old one dies with the old code
	if err != nil {
		return nil, outbox.Message{}, err
	}
	a.log.Info("code resent", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission),
		zap.String("verifier_id", c.VerifierID), zap.Int("generation", c.Generation), logging.Phone(c.Phone))
	return convert.ResendAnswer(now, sess, previous, *c, a.limits), convert.CodeMessage(sess, *c, code, domain.LinkURL(a.LinkBase, token)), nil
}

// drawLinks gives every new challenge its link token and returns the links its SMS carry (""
// each without a link base).
func (a *App) drawLinks(chs []domain.Challenge) ([]string, error) {
	links := make([]string, len(chs))
	for i := range chs {
		token, err := domain.DrawLink(&chs[i])
		if err != nil {
			return nil, err
		}
		links[i] = domain.LinkURL(a.LinkBase, token)
	}
	return links, nil
}

func (a *App) reportLocked(sess domain.Session, c domain.Challenge) {
	if a.OnLock != nil {
		a.OnLock()
	}
	a.log.Warn("verifier locked after too many failed attempts; order returned", logging.OrderID(sess.OrderID),
		logging.Submission(sess.Submission), zap.String("verifier_id", c.VerifierID), logging.Phone(c.Phone))
}

// Status returns the latest submission's session of an order to its tenant (or a cross-tenant
// caller); anyone else gets exactly the answer of an unknown order.
func (a *App) Status(ctx context.Context, orderID string) (*pb.VerificationStatus, error) {
	o, err := a.engine.OrderSessions(ctx, orderID)
	if err != nil {
		return nil, err
	}
	rec := o.Latest()
	if rec == nil || !scopeOf(ctx).Sees(rec.Tenant) {
		return nil, domain.ErrSessionNotFound()
	}
	return convert.Status(rec.Session, rec.Challenges), nil
}

// Verify checks phone + code + ID tail (batched in each engine). Through a link (in.Link) only the
// link's challenge can pass; without a phone, the phone is the link's challenge's, and a dead or
// unknown link is the uniform mismatch.
func (a *App) Verify(ctx context.Context, in domain.VerifyInput) (*pb.VerifyResponse, error) {
	in.Scope = scopeOf(ctx)
	if in.Link != nil && in.Phone == "" {
		r, now, err := a.engine.Link(ctx, in.Link)
		if err != nil {
			return nil, err
		}
		// A dead link can pass nothing, so it counts nothing either: no phone was named.
		if !domain.LinkLive(now, in.Scope, r) {
			a.hasher.Burn(in.Code, in.Tail)
			return nil, domain.ErrNotMatched()
		}
		in.Phone = r.Challenge.Phone
	}
	if err := a.Mismatches.check(ctx, in.Phone); err != nil {
		return nil, err
	}
	resp, err := a.engine.Verify(ctx, in)
	a.Mismatches.recordIfMismatch(ctx, in.Phone, err)
	return resp, err
}

// CloseIfIncomplete applies the deadline to one submission (batched in each engine).
func (a *App) CloseIfIncomplete(ctx context.Context, req *pb.CloseIfIncompleteRequest) (*pb.CloseIfIncompleteResponse, error) {
	return a.engine.CloseIfIncomplete(ctx, req)
}

// scopeOf is whose challenges and sessions the caller of ctx may see (rpc puts the caller in ctx; a
// call without one, as from the store suites, is the development tenant's).
func scopeOf(ctx context.Context) domain.Scope {
	c := rpc.CallerFrom(ctx)
	return domain.Scope{Tenant: c.Tenant, All: c.CrossTenant}
}

// GetLink shows the challenge a link names to the page: the masked phone, the deadline and the
// session's locale, while it can still be checked. A link that is unknown, another tenant's, passed,
// locked, closed, cancelled or past its window is one answer (LINK_NOT_FOUND), so the link tells
// its holder nothing about the order's fate.
func (a *App) GetLink(ctx context.Context, token string) (*pb.GetLinkResponse, error) {
	r, now, err := a.engine.Link(ctx, domain.LinkHash(token))
	if err != nil {
		return nil, err
	}
	if !domain.LinkLive(now, scopeOf(ctx), r) {
		return nil, domain.ErrLinkNotFound()
	}
	return convert.LinkAnswer(r), nil
}
