// Package memstore is the in-memory verification store for the one-process development server. It
// behaves like the PostgreSQL store (package store) and passes the same suite (storetest): one mutex
// guards all state, so every operation is atomic like a transaction, and it applies the same rules
// from internal/domain; only the storage differs. Nothing survives a restart.
package memstore

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/errs"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/idempotency"
	"github.com/icpverify/icpverify/pkg/logging"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/services/verification/internal/convert"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
	"github.com/icpverify/icpverify/services/verification/internal/grpcapi"
)

var _ grpcapi.Store = (*Store)(nil)

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
}

// NewDB returns an empty database that writes its outbox rows to q.
func NewDB(q *outbox.MemQueue) *DB {
	return &DB{sessions: map[string]domain.Session{}, byKey: map[key]string{}, challenges: map[string]domain.Challenge{},
		bySession: map[string][]string{}, tails: map[string][]domain.TailHash{}, idem: idempotency.NewMemTable(), outbox: q}
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
	rand   io.Reader
	wake   func()
}

// New returns a store on db; wake may be nil.
func New(db *DB, clk clock.Clock, hasher *domain.Hasher, limits domain.Limits, log *zap.Logger, wake func()) *Store {
	if wake == nil {
		wake = func() {}
	}
	return &Store{db: db, clock: clk, hasher: hasher, limits: limits, log: log, rand: rand.Reader, wake: wake}
}

// SetRand replaces the code source, so tests draw known, distinct codes. Call it before any use.
func (s *Store) SetRand(r io.Reader) { s.rand = r }

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

func (db *DB) latest(orderID string) (domain.Session, bool) {
	var best domain.Session
	found := false
	for _, sess := range db.sessions {
		if sess.OrderID == orderID && (!found || sess.Submission > best.Submission) {
			best, found = sess, true
		}
	}
	return best, found
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
	now := s.clock.Now()
	cands := make([]domain.Candidate, len(chs))
	for i, c := range chs {
		cands[i] = s.hasher.Candidate(sessions[c.SessionID], c, db.tails[c.ID], in.Code, in.Tail)
	}
	if len(chs) == 0 {
		s.hasher.Burn(in.Code, in.Tail)
	}
	var resp *pb.VerifyResponse
	var enqueued bool
	var err error
	d := domain.DecideVerify(now, cands, s.limits.MaxFailedAttempts)
	if d.Pass >= 0 {
		c := chs[d.Pass]
		resp, enqueued, err = s.pass(now, sessions[c.SessionID], c)
	} else {
		enqueued, err = s.countFailures(now, sessions, chs, d.Failures)
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

// countFailures records the failures of a check; see store.Store.countFailures.
func (s *Store) countFailures(now time.Time, sessions map[string]domain.Session, chs []domain.Challenge, fs []domain.Failure) (bool, error) {
	db := s.db
	enqueued := false
	for _, f := range fs {
		c := chs[f.Index]
		sess := sessions[c.SessionID]
		c.Failed = f.FailedAttempts
		if f.Lock {
			c.State = domain.ChallengeLocked
		}
		db.challenges[c.ID] = c
		if !f.Lock {
			continue
		}
		db.setState(sess.ID, domain.SessionFailed)
		if err := db.emit(now, convert.LockedMessages(sess)...); err != nil {
			return enqueued, err
		}
		enqueued = true
		if s.OnLock != nil {
			s.OnLock()
		}
		s.log.Warn("verifier locked after too many failed attempts; order returned", logging.OrderID(sess.OrderID),
			logging.Submission(sess.Submission), zap.String("verifier_id", c.VerifierID), logging.Phone(c.Phone))
	}
	return enqueued, nil
}

// OpenSession creates the session of (order_id, submission); see store.Store.OpenSession.
func (s *Store) OpenSession(_ context.Context, req *pb.OpenSessionRequest, spec domain.OpenSpec) (*pb.OpenSessionResponse, error) {
	db := s.db
	db.mu.Lock()
	enqueued := false
	resp, err := idempotency.DoMem(db.idem, pb.VerificationInternalService_OpenSession_FullMethodName, req.GetRequestId(),
		convert.RedactOpenRequest(req, s.hasher), func() *pb.OpenSessionResponse { return &pb.OpenSessionResponse{} },
		func() (*pb.OpenSessionResponse, error) {
			now := s.clock.Now()
			existing, exists := db.session(spec.OrderID, spec.Submission)
			latest, _ := db.latest(spec.OrderID)
			action, err := domain.DecideOpen(now, exists, latest.Submission, spec)
			if err != nil {
				return nil, err
			}
			if action == domain.OpenReplay {
				return &pb.OpenSessionResponse{Status: db.status(existing)}, nil
			}
			sess, chs, tails, codes, err := domain.NewSession(now, uuid.NewString, spec, action, s.hasher, s.rand)
			if err != nil {
				return nil, err
			}
			for id, old := range db.sessions {
				if old.OrderID == spec.OrderID && old.State == domain.SessionOpen {
					db.setState(id, domain.SessionCancelled)
				}
			}
			db.insert(sess)
			for _, c := range chs {
				db.challenges[c.ID] = c
				db.bySession[sess.ID] = append(db.bySession[sess.ID], c.ID)
				db.tails[c.ID] = tails[c.ID]
			}
			if err := db.emit(now, convert.OpenMessages(sess, chs, codes)...); err != nil {
				return nil, err
			}
			enqueued = true
			if sess.State == domain.SessionTimedOut {
				s.log.Warn("session opened after its deadline: recorded as timed out, order returned", logging.OrderID(sess.OrderID),
					logging.Submission(sess.Submission), zap.Time("deadline_at", sess.DeadlineAt))
			} else {
				s.log.Info("session opened", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission),
					zap.Int("verifiers", len(spec.Verifiers)), zap.Time("deadline_at", sess.DeadlineAt))
			}
			return &pb.OpenSessionResponse{Status: db.status(sess)}, nil
		})
	db.mu.Unlock()
	if enqueued {
		s.wake()
	}
	return resp, err
}

// errNoMatch leaves DoMem with the state unchanged; the failures are counted after it, under the lock.
var errNoMatch = errors.New("no verifier matches this phone and ID tail")

// ResendByPhone sends a new code to the verifier identified by phone + ID tail; a mismatch counts as a
// failed check on the phone's pending challenges. See store.Store.ResendByPhone for why.
func (s *Store) ResendByPhone(_ context.Context, req *pb.ResendCodeRequest, phone, tail string) (*pb.ResendCodeResponse, error) {
	db := s.db
	fingerprint := &pb.ResendCodeRequest{RequestId: req.GetRequestId(), Phone: s.hasher.Fingerprint(phone, tail)}
	db.mu.Lock()
	var now time.Time
	var sessions map[string]domain.Session
	var chs []domain.Challenge
	var failures []domain.Failure
	enqueued := false
	resp, err := idempotency.DoMem(db.idem, pb.VerificationService_ResendCode_FullMethodName, req.GetRequestId(), fingerprint,
		func() *pb.ResendCodeResponse { return &pb.ResendCodeResponse{} },
		func() (*pb.ResendCodeResponse, error) {
			sessions, chs = db.pendingFor(phone)
			now = s.clock.Now()
			cands := make([]domain.ResendCandidate, len(chs))
			for i, c := range chs {
				sess := sessions[c.SessionID]
				cands[i] = domain.ResendCandidate{Check: domain.CandidateOf(sess, c),
					TailMatches: s.hasher.TailMatches(c.ID, db.tails[c.ID], tail), CreatedAt: sess.CreatedAt}
			}
			if len(chs) == 0 {
				s.hasher.Burn("000000", tail)
			}
			var found int
			found, failures = domain.DecideResendByPhone(now, cands, s.limits.MaxFailedAttempts)
			if found < 0 {
				return nil, errNoMatch
			}
			c := chs[found]
			r, err := s.applyResend(now, sessions[c.SessionID], c)
			if err != nil {
				return nil, err
			}
			enqueued = true
			return &pb.ResendCodeResponse{Resend: r}, nil
		})
	if errors.Is(err, errNoMatch) {
		enqueued, err = s.countFailures(now, sessions, chs, failures)
		if err == nil {
			err = domain.ErrNotMatched()
		}
	}
	db.mu.Unlock()
	if enqueued {
		s.wake()
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// ResendVerifier sends a new code to one verifier of an order's latest submission.
func (s *Store) ResendVerifier(_ context.Context, req *pb.ResendVerifierCodeRequest) (*pb.ResendVerifierCodeResponse, error) {
	db := s.db
	db.mu.Lock()
	resp, err := idempotency.DoMem(db.idem, pb.VerificationInternalService_ResendVerifierCode_FullMethodName, req.GetRequestId(), req,
		func() *pb.ResendVerifierCodeResponse { return &pb.ResendVerifierCodeResponse{} },
		func() (*pb.ResendVerifierCodeResponse, error) {
			notFound := errs.NotFound(domain.ReasonVerifierNotFound, "no such verifier for this order")
			sess, ok := db.latest(req.GetOrderId())
			if !ok {
				return nil, notFound
			}
			for _, c := range db.challengesOf(sess.ID) {
				if c.VerifierID == req.GetVerifierId() {
					r, err := s.applyResend(s.clock.Now(), sess, c)
					if err != nil {
						return nil, err
					}
					return &pb.ResendVerifierCodeResponse{Resend: r}, nil
				}
			}
			return nil, notFound
		})
	db.mu.Unlock()
	if err != nil {
		return nil, err
	}
	s.wake()
	return resp, nil
}

// applyResend applies the limits, replaces the code hash and queues the new SMS; on error nothing changed.
func (s *Store) applyResend(now time.Time, sess domain.Session, c domain.Challenge) (*pb.Resend, error) {
	code, err := domain.PrepareResend(now, sess, &c, s.limits, s.hasher, s.rand)
	if err != nil {
		return nil, err
	}
	if err := s.db.emit(now, convert.CodeMessage(sess, c, code)); err != nil {
		return nil, err
	}
	s.db.challenges[c.ID] = c
	s.log.Info("code resent", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission),
		zap.String("verifier_id", c.VerifierID), zap.Int("generation", c.Generation), logging.Phone(c.Phone))
	return convert.ResendAnswer(now, sess, c, s.limits), nil
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

// CancelSession closes an open session because its order was cancelled; see store.Store.CancelSession.
func (s *Store) CancelSession(_ context.Context, req *pb.CancelSessionRequest) (*pb.CancelSessionResponse, error) {
	db := s.db
	db.mu.Lock()
	defer db.mu.Unlock()
	return idempotency.DoMem(db.idem, pb.VerificationInternalService_CancelSession_FullMethodName, req.GetRequestId(), req,
		func() *pb.CancelSessionResponse { return &pb.CancelSessionResponse{} },
		func() (*pb.CancelSessionResponse, error) {
			now := s.clock.Now()
			sess, ok := db.session(req.GetOrderId(), req.GetSubmission())
			switch {
			case !ok:
				sess = domain.Tombstone(now, uuid.NewString(), req.GetOrderId(), req.GetSubmission())
				db.insert(sess)
			case sess.State == domain.SessionOpen:
				db.setState(sess.ID, domain.SessionCancelled)
				sess.State = domain.SessionCancelled
			}
			s.log.Info("session cancelled", logging.OrderID(sess.OrderID), logging.Submission(sess.Submission),
				zap.String("state", string(sess.State)))
			return &pb.CancelSessionResponse{Status: db.status(sess)}, nil
		})
}

// Status returns the latest submission's session of an order.
func (s *Store) Status(_ context.Context, orderID string) (*pb.VerificationStatus, error) {
	s.db.mu.Lock()
	defer s.db.mu.Unlock()
	sess, ok := s.db.latest(orderID)
	if !ok {
		return nil, domain.ErrSessionNotFound()
	}
	return s.db.status(sess), nil
}
