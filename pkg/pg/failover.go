package pg

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
)

// What a service does when its primary fails over (see the README's "PostgreSQL failover"):
//
//   - A multi-host --database-url with target_session_attrs=read-write makes every new connection find
//     the primary; pgx checks that once, when it connects.
//   - A pooled connection that later lands on a read-only server (a demoted primary behind a virtual IP or
//     a Kubernetes Service, a fenced node) answers every write 25006. Such a connection is dropped when it
//     goes back to the pool, and the pool is reset (its other connections were made to the same server), so
//     the next connections are dialled again through the host list.
//   - PostgreSQL answers a cancelled wait for a synchronous standby (a query cancel, statement_timeout,
//     pg_cancel_backend) with a warning, "committed locally, might not have been replicated", and a
//     successful COMMIT: a write that a failover can lose. Such a COMMIT is an unknown outcome
//     (ErrOutcomeUnknown, answered Unavailable): the client retries with its request id, which answers
//     from the stored outcome, never a guess. (pgx itself never cancels a query: a context that ends
//     closes the connection, which the waiting backend does not notice, so its wait goes on; the caller
//     gets an unknown outcome from the lost connection.)

// The SQLSTATEs of a server that refuses writes or connections for a while.
const (
	stateReadOnly          = "25006" // read_only_sql_transaction
	stateTooManyConnection = "53300" // too_many_connections: a reconnect storm after a failover
)

// resetEvery spaces pool resets: every connection of the pool may report read-only at once.
const resetEvery = time.Second

// Keys of a connection's CustomData.
const (
	keyReadOnly         = "icp.read_only"
	keySyncRepCancelled = "icp.sync_rep_cancelled"
)

// failoverHooks are the pool's reactions to a read-only server and to a cancelled synchronous commit.
type failoverHooks struct {
	log       *zap.Logger
	pool      atomic.Pointer[pgxpool.Pool]
	lastReset atomic.Int64 // unix nanoseconds
}

// install sets the hooks on cfg; the pool is given once it exists (setPool).
func (h *failoverHooks) install(cfg *pgxpool.Config) {
	prevErr := cfg.ConnConfig.OnPgError
	cfg.ConnConfig.OnPgError = func(c *pgconn.PgConn, e *pgconn.PgError) bool {
		if e.Code == stateReadOnly {
			c.CustomData()[keyReadOnly] = true
			h.reset()
		}
		if prevErr != nil {
			return prevErr(c, e)
		}
		return true
	}
	prevNotice := cfg.ConnConfig.OnNotice
	cfg.ConnConfig.OnNotice = func(c *pgconn.PgConn, n *pgconn.Notice) {
		if isSyncRepCancelled(n) {
			c.CustomData()[keySyncRepCancelled] = true
		}
		if prevNotice != nil {
			prevNotice(c, n)
		}
	}
	prevRelease := cfg.AfterRelease
	cfg.AfterRelease = func(c *pgx.Conn) bool {
		if c.PgConn().CustomData()[keyReadOnly] == true {
			return false // destroyed: the next connection is dialled through the host list again
		}
		return prevRelease == nil || prevRelease(c)
	}
}

func (h *failoverHooks) setPool(p *pgxpool.Pool) { h.pool.Store(p) }

// reset closes the pool's connections (checked-out ones when they are released), at most once a second.
func (h *failoverHooks) reset() {
	now := time.Now().UnixNano()
	last := h.lastReset.Load()
	if now-last < int64(resetEvery) || !h.lastReset.CompareAndSwap(last, now) {
		return
	}
	if p := h.pool.Load(); p != nil {
		h.log.Warn("the database server is read-only (a failover?): reconnecting through the host list")
		go p.Reset() // not on the connection's own read path
	}
}

// isSyncRepCancelled tells PostgreSQL's warning that a commit stopped waiting for its synchronous
// standbys (syncrep.c: a cancel or a termination during the wait): the commit is local only.
func isSyncRepCancelled(n *pgconn.Notice) bool {
	return strings.HasPrefix(n.Message, "canceling wait for synchronous replication") ||
		strings.HasPrefix(n.Message, "canceling the wait for synchronous replication")
}

// startCommit forgets an earlier commit's sync-rep warning on c before a new COMMIT is sent.
func startCommit(c *pgconn.PgConn) { delete(c.CustomData(), keySyncRepCancelled) }

// commitReplicated reports a COMMIT that succeeded locally while its wait for the standbys was cancelled
// as an unknown outcome: it may be lost with the primary.
func commitReplicated(c *pgconn.PgConn) error {
	if c.CustomData()[keySyncRepCancelled] == true {
		delete(c.CustomData(), keySyncRepCancelled)
		return &OutcomeUnknownError{Err: errSyncRepCancelled}
	}
	return nil
}

var errSyncRepCancelled = syncRepError{}

type syncRepError struct{}

func (syncRepError) Error() string {
	return "the commit is local: its wait for the synchronous standbys was cancelled"
}
