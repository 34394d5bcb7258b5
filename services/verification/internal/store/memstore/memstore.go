// Package memstore is the in-memory verification engine (app.Engine) for the one-process development
// server. It behaves like the PostgreSQL engine (package store) and passes the same suite
// (storetest): one mutex guards all state, so every operation is atomic like a transaction; the
// single-order use cases are internal/app's and the rules internal/domain's, so only the storage
// differs. Nothing survives a restart.
package memstore

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/clock"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/verification/internal/app"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

var _ app.Engine = (*Store)(nil)

type key struct {
	orderID    string
	submission int32
}

// DB is the state several Stores may share, as replicas share a database: sessions, challenges, ID-tail
// hashes, the idempotency table and the outbox.
type DB struct {
	mu         sync.Mutex
	sessions   map[string]domain.Session // by id
	byKey      map[key]string            // (order_id, submission) -> session id
	challenges map[string]domain.Challenge
	bySession  map[string][]string // session id -> challenge ids
	tails      map[string][]domain.TailHash
	idem       *idempotency.MemTable
	outbox     *outbox.MemQueue
	// failures are the counted failures of each phone (the per-phone budget), by phone: the
	// PostgreSQL engine keys them by the phone's HMAC, memory holds nothing past a restart anyway.
	failures map[string][]domain.PhoneFailure
}

// NewDB returns an empty database that writes its outbox rows to q.
func NewDB(q *outbox.MemQueue) *DB {
	return &DB{sessions: map[string]domain.Session{}, byKey: map[key]string{}, challenges: map[string]domain.Challenge{},
		bySession: map[string][]string{}, tails: map[string][]domain.TailHash{}, idem: idempotency.NewMemTable(), outbox: q,
		failures: map[string][]domain.PhoneFailure{}}
}

// Store is the in-memory verification store.
type Store struct {
	// OnLock, when set, is called after a verifier was locked by too many failed attempts (metrics).
	OnLock func()
	db     *DB
	clock  clock.Clock
	hasher *domain.Hasher
	limits domain.Limits
	log    *zap.Logger
	wake   func()
}

// New returns a store on db; wake may be nil.
func New(db *DB, clk clock.Clock, hasher *domain.Hasher, limits domain.Limits, log *zap.Logger, wake func()) *Store {
	if wake == nil {
		wake = func() {}
	}
	return &Store{db: db, clock: clk, hasher: hasher, limits: limits, log: log, wake: wake}
}

// emit queues msgs; the caller holds the lock, which makes them atomic with its change.
func (db *DB) emit(now time.Time, msgs ...outbox.Message) error { return db.outbox.AddAll(now, msgs) }

func (db *DB) challengesOf(sessionID string) []domain.Challenge {
	var out []domain.Challenge
	for _, id := range db.bySession[sessionID] {
		out = append(out, db.challenges[id])
	}
	return out
}

func (db *DB) status(sess domain.Session) *pb.VerificationStatus {
	return convert.Status(sess, db.challengesOf(sess.ID))
}

// pendingFor is lockPhone of the PostgreSQL store: the pending challenges of phone in open sessions,
// ordered by challenge id, with their sessions.
func (db *DB) pendingFor(phone string) (map[string]domain.Session, []domain.Challenge) {
	sessions := map[string]domain.Session{}
	var chs []domain.Challenge
	for _, c := range db.challenges {
		if c.Phone != phone || c.State != domain.ChallengePending {
			continue
		}
		if sess := db.sessions[c.SessionID]; sess.State == domain.SessionOpen {
			sessions[sess.ID] = sess
			chs = append(chs, c)
		}
	}
	slices.SortFunc(chs, func(a, b domain.Challenge) int { return cmp.Compare(a.ID, b.ID) })
	return sessions, chs
}

func (db *DB) session(orderID string, submission int32) (domain.Session, bool) {
	id, ok := db.byKey[key{orderID, submission}]
	if !ok {
		return domain.Session{}, false
	}
	return db.sessions[id], true
}

func (db *DB) insert(sess domain.Session) {
	db.sessions[sess.ID] = sess
	db.byKey[key{sess.OrderID, sess.Submission}] = sess.ID
}

func (db *DB) setState(id string, state domain.SessionState) {
	sess := db.sessions[id]
	sess.State = state
	db.sessions[id] = sess
}

// Verify checks one entry; see store.Store.Verify.
func (s *Store) Verify(_ context.Context, in domain.VerifyInput) (*pb.VerifyResponse, error) {
	db := s.db
	db.mu.Lock()
	sessions, chs := db.pendingFor(in.Phone)
	visible := domain.Visible(in.Scope, sessions, chs)
	now := s.clock.Now()
	cands := make([]domain.Candidate, len(visible))
	for j, i := range visible {
		c := chs[i]
		cands[j] = s.hasher.Candidate(sessions[c.SessionID], c, db.tails[c.ID], in.Code, in.Tail, in.Link)
	}
	if len(visible) == 0 {
		s.hasher.Burn(in.Code, in.Tail)
	}
	var resp *pb.VerifyResponse
	var enqueued bool
	pc := domain.DecidePhoneCheck(now, domain.DecideVerify(now, cands, s.limits.MaxFailedAttempts), db.failures[in.Phone], s.limits)
	err := pc.Err()
	switch {
	case err != nil:
	case pc.Verify.Pass >= 0:
		c := chs[visible[pc.Verify.Pass]]
		resp, enqueued, err = s.pass(now, sessions[c.SessionID], c)
	default:
		enqueued, err = s.mismatch(now, in.Phone, sessions, chs, visible, pc)
	}
	db.mu.Unlock()
	if enqueued {
		s.wake()
	}
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, domain.ErrNotMatched()
	}
	return resp, nil
}

// countFailure records the unit of the phone's budget a check counted (if any) and drops the
// records past use.
func (db *DB) countFailure(now time.Time, phone string, f *domain.PhoneFailure, l domain.Limits) {
	if f == nil {
		return
	}
	fs := append(db.failures[phone], *f)
	fs = slices.DeleteFunc(fs, func(x domain.PhoneFailure) bool { return domain.PhoneFailuresPrunable(now, x.At, l) })
	db.failures[phone] = fs
}

func (s *Store) pass(now time.Time, sess domain.Session, c domain.Challenge) (*pb.VerifyResponse, bool, error) {
	db := s.db
	c.State, c.PassedAt = domain.ChallengePassed, &now
	db.challenges[c.ID] = c
	var states []domain.ChallengeState
	for _, x := range db.challengesOf(sess.ID) {
		states = append(states, x.State)
	}
	s.log.Info("verifier passed", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission),
		zap.String("verifier_id", c.VerifierID), logging.Phone(c.Phone))
	if !domain.AllPassed(states) {
		return convert.PassAnswer(sess, false), false, nil
	}
	db.setState(sess.ID, domain.SessionPassed)
	if err := db.emit(now, convert.PassedMessages(sess)...); err != nil {
		return nil, false, err
	}
	s.log.Info("session passed", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission))
	return convert.PassAnswer(sess, true), true, nil
}

// mismatch records the effects of a failed check (see store.Store.queueVerifies): the counts, the
// locks, the unit of the phone's budget and the returns owed.
func (s *Store) mismatch(now time.Time, phone string, sessions map[string]domain.Session, chs []domain.Challenge, visible []int,
	pc domain.PhoneCheck) (bool, error) {
	db := s.db
	db.countFailure(now, phone, pc.Failure, s.limits)
	e := domain.ApplyPhoneCheck(pc, sessions, chs, visible)
	for _, i := range e.Changed {
		db.challenges[chs[i].ID] = chs[i]
	}
	for _, id := range e.Returned {
		db.setState(id, domain.SessionFailed)
	}
	msgs := convert.ReturnedMessages(sessions, phone, e)
	if err := db.emit(now, msgs...); err != nil {
		return false, err
	}
	for _, i := range e.Locked {
		c := chs[i]
		sess := sessions[c.SessionID]
		if s.OnLock != nil {
			s.OnLock()
		}
		s.log.Warn("verifier locked after too many failed attempts; order returned", logging.OrderID(sess.OrderID),
			logging.Submission(sess.Submission), zap.String("verifier_id", c.VerifierID), logging.Phone(c.Phone),
			zap.Bool("phone_budget_spent", !e.LockedUntil.IsZero()))
	}
	return len(msgs) > 0, nil
}

// CloseIfIncomplete applies the deadline to one submission; see store.Store.CloseIfIncomplete.
func (s *Store) CloseIfIncomplete(_ context.Context, req *pb.CloseIfIncompleteRequest) (*pb.CloseIfIncompleteResponse, error) {
	db := s.db
	db.mu.Lock()
	enqueued := false
	resp, err := idempotency.DoMem(db.idem, pb.VerificationInternalService_CloseIfIncomplete_FullMethodName, req.GetRequestId(), req,
		func() *pb.CloseIfIncompleteResponse { return &pb.CloseIfIncompleteResponse{} },
		func() (*pb.CloseIfIncompleteResponse, error) {
			sess, ok := db.session(req.GetOrderId(), req.GetSubmission())
			if !ok {
				return nil, domain.ErrSessionNotFound()
			}
			now := s.clock.Now()
			d, err := domain.DecideClose(now, sess.State, sess.DeadlineAt)
			if err != nil {
				return nil, err
			}
			if d.Return {
				if err := db.emit(now, convert.TimedOutMessages(sess)...); err != nil {
					return nil, err
				}
				db.setState(sess.ID, domain.SessionTimedOut)
				sess.State = domain.SessionTimedOut
				enqueued = true
				s.log.Info("session timed out; order returned", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission))
			}
			return &pb.CloseIfIncompleteResponse{Closed: d.Closed, Status: db.status(sess)}, nil
		})
	db.mu.Unlock()
	if enqueued {
		s.wake()
	}
	return resp, err
}

// UpdateOrder runs fn on a copy of an order's sessions and keeps the copy when fn succeeds (see
// app.Engine).
func (s *Store) UpdateOrder(_ context.Context, op app.Op, orderID string, fn app.OrderFunc) (proto.Message, error) {
	db := s.db
	db.mu.Lock()
	enqueued := false
	resp, err := idempotency.DoMem(db.idem, op.Method, op.RequestID, op.Req, op.NewAnswer, func() (proto.Message, error) {
		o := db.orderSessions(orderID)
		o.PhoneFailures = map[string][]domain.PhoneFailure{}
		for _, p := range op.Phones {
			o.PhoneFailures[p] = slices.Clone(db.failures[p])
		}
		now := s.clock.Now()
		ch, err := fn(&o, now)
		if err != nil {
			return nil, err // nothing changed: fn worked on a copy
		}
		if err := db.emit(now, ch.Messages...); err != nil {
			return nil, err
		}
		enqueued = len(ch.Messages) > 0
		for _, r := range o.Sessions {
			if _, exists := db.sessions[r.ID]; !exists {
				db.insert(r.Session)
				for _, c := range r.Challenges {
					db.bySession[r.ID] = append(db.bySession[r.ID], c.ID)
					db.tails[c.ID] = r.Tails[c.ID]
				}
			}
			db.sessions[r.ID] = r.Session
			for _, c := range r.Challenges {
				db.challenges[c.ID] = c
			}
		}
		return ch.Answer, nil
	})
	db.mu.Unlock()
	if enqueued {
		s.wake()
	}
	return resp, err
}

// UpdatePhone runs fn on a copy of a phone's pending challenges and keeps the copy when fn succeeds,
// also when its Change carries an error to answer (see app.Engine).
func (s *Store) UpdatePhone(_ context.Context, op app.Op, phone string, fn app.PhoneFunc) (proto.Message, error) {
	db := s.db
	db.mu.Lock()
	enqueued := false
	var answerErr error
	resp, err := idempotency.DoMem(db.idem, op.Method, op.RequestID, op.Req, op.NewAnswer, func() (proto.Message, error) {
		sessions, chs := db.pendingFor(phone)
		tails := map[string][]domain.TailHash{}
		for _, c := range chs {
			tails[c.ID] = db.tails[c.ID]
		}
		loaded := db.failures[phone]
		p := domain.PhoneChallenges{Phone: phone, Sessions: maps.Clone(sessions), Challenges: slices.Clone(chs), Tails: tails,
			Failures: slices.Clone(loaded)}
		now := s.clock.Now()
		ch, err := fn(&p, now)
		if err != nil {
			return nil, err
		}
		if err := db.emit(now, ch.Messages...); err != nil {
			return nil, err
		}
		enqueued = len(ch.Messages) > 0
		for _, sess := range p.Sessions {
			db.sessions[sess.ID] = sess
		}
		for _, c := range p.Challenges {
			db.challenges[c.ID] = c
		}
		for _, f := range p.Failures[len(loaded):] {
			db.countFailure(now, phone, &f, s.limits)
		}
		if ch.Err != nil {
			answerErr = ch.Err
			return nil, errKeep // DoMem keeps no answer for an error; the change above stays
		}
		return ch.Answer, nil
	})
	db.mu.Unlock()
	if enqueued {
		s.wake()
	}
	if errors.Is(err, errKeep) {
		return nil, answerErr
	}
	return resp, err
}

// errKeep leaves DoMem without an answer to keep, after a change that stays.
var errKeep = errors.New("change kept, answered with an error")

// OrderSessions reads the sessions of an order (see app.Engine).
func (s *Store) OrderSessions(_ context.Context, orderID string) (domain.OrderSessions, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	return s.db.orderSessions(orderID), nil
}

// orderSessions is a copy of the sessions of an order, with their challenges.
func (db *DB) orderSessions(orderID string) domain.OrderSessions {
	o := domain.OrderSessions{OrderID: orderID}
	for _, sess := range db.sessions {
		if sess.OrderID == orderID {
			o.Sessions = append(o.Sessions, domain.SessionRecord{Session: sess, Challenges: db.challengesOf(sess.ID)})
		}
	}
	slices.SortFunc(o.Sessions, func(a, b domain.SessionRecord) int { return cmp.Compare(a.ID, b.ID) })
	return o
}

// Link finds the challenge of a link hash with its session (see store.Store.Link). Memory scans:
// the dev store holds a few challenges, PostgreSQL has the index.
func (s *Store) Link(_ context.Context, hash []byte) (domain.LinkRecord, time.Time, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	now := s.clock.Now()
	for _, c := range db.challenges {
		if len(c.LinkHash) > 0 && bytes.Equal(c.LinkHash, hash) {
			return domain.LinkRecord{Session: db.sessions[c.SessionID], Challenge: c, Found: true}, now, nil
		}
	}
	return domain.LinkRecord{}, now, nil
}
