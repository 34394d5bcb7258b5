// Package store keeps messages and the per-phone send log in PostgreSQL. It is the only package that
// sees the driver: its errors become domain errors here. Every write that decides a message's fate
// (claim, cap reservation, sent, retry, fail) is one statement or one transaction.
package store

import (
	"embed"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icpverify/icpverify/pkg/batch"
	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/seal"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/grpcapi"
)

// The store is the engine of the handlers and of the dispatcher.
var (
	_ grpcapi.Store    = (*Store)(nil)
	_ dispatcher.Store = (*Store)(nil)
)

//go:embed migrations/*.sql
var fs embed.FS

// Migrations creates the messages and phone_sends tables.
var Migrations = pg.Source{Name: "sms-dispatch", FS: fs}

//go:embed queries.sql
var queriesSQL string

// queries holds the store's statements, one field per "-- name:" block of queries.sql.
var queries = pg.MustQueries[struct {
	Get, GetAll, List, LockThreads, Create, Claim, LockPhone, LockClaim, DropOldSends string
	RecentSends, ReserveSend, Reschedule, Fail, MarkSentAll, Retry, ReleaseSend       string
	LockMessages, FindProviderIDs, SetDeliveries, ParkAll, TakeParked, MarkAtRisk     string
	DropParked, StrandedParked, Hand, Refused, Unhand, RedeliveryOf, Requeue          string
	BarHandoffs, BarredOf                                                             string
}]("sms-dispatch/internal/store/queries.sql", queriesSQL)

// Store is the PostgreSQL store.
type Store struct {
	pool  *pgxpool.Pool
	clock clock.Clock // Reserve reads it after its locks
	// keys seal the messages' texts at rest (text.go).
	keys *seal.Keyring
	// creates commits concurrent Creates together (create_batch.go).
	creates *batch.Group[domain.Message, created]
	// Wake, when set, is called after a commit that wrote an outbox row (a failed message's delivery
	// report, report.go): the relay's Wake. The outbox table (pkg/outbox.Migrations) is in the schema.
	Wake func()
	// redelivery is the configuration of redeliveries (SetRedelivery); off when zero.
	redelivery domain.Redelivery
}

// SetRedelivery turns redeliveries on (domain.Redelivery); call it before the store is used.
func (s *Store) SetRedelivery(r domain.Redelivery) { s.redelivery = r }

// New returns a store on pool (whose search_path is the service's schema) that seals the messages'
// texts with keys; nil keys panic: the texts carry the codes, which are never stored in the clear.
func New(pool *pgxpool.Pool, clk clock.Clock, keys *seal.Keyring) *Store {
	if keys == nil {
		panic("sms-dispatch store: no seal keys")
	}
	s := &Store{pool: pool, clock: clk, keys: keys}
	s.creates = &batch.Group[domain.Message, created]{Run: s.createBatch, Flights: createFlights, MaxBatch: 100}
	return s
}

// scanMessage reads the message columns of queries.sql's statements (Get's), opening the text.
func (s *Store) scanMessage(row pgx.Row) (domain.Message, error) {
	var (
		m        domain.Message
		template string
		state    string
		sealed   []byte
		sentAt   *time.Time
		receipt  *time.Time
	)
	err := row.Scan(&m.ID, &m.OrderID, &m.Phone, &template, &m.Locale, &sealed, &state, &m.Attempts,
		&m.NextAttempt, &m.ExpireAt, &m.Provider, &m.LastError, &m.CreatedAt, &sentAt, &m.Redacted, &m.Sequence,
		&m.ProviderIDs, &m.DeliveryCode, &receipt)
	if err != nil {
		return domain.Message{}, err
	}
	m.Template = domain.ParseTemplate(template)
	m.State = domain.State(state)
	s.openText(&m, sealed)
	if sentAt != nil {
		m.SentAt = sentAt.UTC()
	}
	if receipt != nil {
		m.ReceiptAt = receipt.UTC()
	}
	if len(m.ProviderIDs) == 0 {
		m.ProviderIDs = nil
	}
	m.NextAttempt, m.ExpireAt, m.CreatedAt = m.NextAttempt.UTC(), m.ExpireAt.UTC(), m.CreatedAt.UTC()
	return m, nil
}

// collectMessages reads every row of a statement that returns messages.
func (s *Store) collectMessages(rows pgx.Rows) ([]domain.Message, error) {
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Message, error) { return s.scanMessage(r) })
}

// prefixedRow scans a row whose first columns, into first, precede the columns of a message.
type prefixedRow struct {
	pgx.Row
	first []any
}

func (r prefixedRow) Scan(dest ...any) error { return r.Row.Scan(append(r.first, dest...)...) }
