// Package store is the PostgreSQL engine of verification (app.Engine): sessions and challenges. Every
// check, resend and close of a submission runs in one transaction that locks the session row before
// its challenge rows (sessions in id order), so attempt counting is exact and "all passed" versus
// "timed out" is decided once. Calls owed to other services are outbox rows written in the same
// transaction. The rules are internal/domain's and the single-order use cases internal/app's; this
// package and memstore differ only in storage.
package store

import (
	"embed"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	pb "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/outbox"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/seal"
	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

//go:embed migrations/*.sql
var fs embed.FS

// Migrations creates the sessions, challenges and challenge_id_tails tables.
var Migrations = pg.Source{Name: "verification", FS: fs}

//go:embed queries.sql
var queriesSQL string

// queries holds the store's statements, one field per "-- name:" block of queries.sql.
var queries = pg.MustQueries[struct {
	LockOrder, OrderSessions, OrderSessionsForUpdate, SessionChallenges                       string
	InsertSession, InsertChallenge, InsertTail, SetSessionState, UpdateChallenge              string
	LockPhone, LinkChallenge, CountFailures, PassAll, LockClosing, ClosingChallenges, TimeOut string
	PhoneFailures, InsertPhoneFailures, PrunePhoneFailures, SetAutoResent                     string
}]("verification/internal/store/queries.sql", queriesSQL)

// outboxHead stands in PassAll for pkg/outbox's insert head: the outbox table is pkg/outbox's, so the
// store names its insert rather than spelling it.
const outboxHead = "{{outbox.InsertIntoSQL}}"

func init() {
	if strings.Count(queries.PassAll, outboxHead) != 1 {
		panic("verification/internal/store/queries.sql: PassAll must hold " + outboxHead + " once")
	}
	queries.PassAll = strings.Replace(queries.PassAll, outboxHead, outbox.InsertIntoSQL, 1)
}

// Store is the PostgreSQL verification store.
type Store struct {
	// OnLock, when set, is called after a verifier was locked by too many failed attempts (metrics).
	OnLock func()
	pool   *pgxpool.Pool
	clock  clock.Clock
	hasher *domain.Hasher
	// keys seal the sensitive outbox payloads (the SendMessage calls, which carry the code).
	keys   *seal.Keyring
	limits domain.Limits
	log    *zap.Logger
	// wake is called after a commit that wrote outbox rows (the relay's Wake), so they leave at once.
	wake func()
	// closes serves concurrent CloseIfIncomplete calls in batches (closeBatch).
	closes *batch.Group[*pb.CloseIfIncompleteRequest, *pb.CloseIfIncompleteResponse]
	// verifies serves concurrent Verify calls in batches (verifyBatch).
	verifies *batch.Group[domain.VerifyInput, verifyResult]
	// failureWrites counts the transactions that counted phone failures (pruneEvery).
	failureWrites atomic.Uint64
}

// New returns a store whose outbox rows seal their sensitive payloads with keys (the relay's
// outbox.PGQueue opens them with the same keyring); wake may be nil.
func New(pool *pgxpool.Pool, clk clock.Clock, hasher *domain.Hasher, keys *seal.Keyring, limits domain.Limits, log *zap.Logger,
	wake func()) *Store {
	if wake == nil {
		wake = func() {}
	}
	s := &Store{pool: pool, clock: clk, hasher: hasher, keys: keys, limits: limits, log: log, wake: wake}
	s.closes = &batch.Group[*pb.CloseIfIncompleteRequest, *pb.CloseIfIncompleteResponse]{Run: s.closeBatch, MaxBatch: 128}
	s.verifies = &batch.Group[domain.VerifyInput, verifyResult]{Run: s.verifyBatch, MaxBatch: verifyMaxBatch, Flights: verifyFlights}
	return s
}

// scanSession reads the session columns of queries.sql's statements (OrderSessions').
func scanSession(row pgx.Row) (domain.Session, error) {
	var s domain.Session
	var state string
	err := row.Scan(&s.ID, &s.OrderID, &s.Submission, &state, &s.DeadlineAt, &s.Locale, &s.CreatedAt, &s.Tenant)
	s.State = domain.SessionState(state)
	return s, err
}

// scanOrderSession reads the columns of OrderSessions: scanSession's and auto_resent_at.
func scanOrderSession(row pgx.Row) (domain.Session, error) {
	var s domain.Session
	var state string
	var autoResent *time.Time
	err := row.Scan(&s.ID, &s.OrderID, &s.Submission, &state, &s.DeadlineAt, &s.Locale, &s.CreatedAt, &s.Tenant, &autoResent)
	s.State = domain.SessionState(state)
	if autoResent != nil {
		s.AutoResentAt = autoResent.UTC()
	}
	return s, err
}

// scanChallenge reads the challenge columns of queries.sql's statements (SessionChallenges').
func scanChallenge(row pgx.Row) (domain.Challenge, error) {
	var c domain.Challenge
	var state, delivery string
	err := row.Scan(&c.ID, &c.SessionID, &c.VerifierID, &c.Phone, &c.Roles, &c.CodeHash, &c.CodeKeyID, &c.Generation,
		&c.Failed, &c.ResendsUsed, &c.LastSentAt, &state, &c.PassedAt, &c.LinkHash, &delivery)
	c.State, c.Delivery = domain.ChallengeState(state), domain.CodeDelivery(delivery)
	return c, err
}

func collectChallenges(rows pgx.Rows, err error) ([]domain.Challenge, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Challenge, error) { return scanChallenge(r) })
}
