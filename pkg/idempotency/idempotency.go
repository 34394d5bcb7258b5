// Package idempotency stores the first answer to each mutating request by request_id (AIP-155), in
// the same transaction as the request's effect: a retry gets the same answer and changes nothing.
package idempotency

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/pg"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations creates the idempotency_keys table in the service's schema.
var Migrations = pg.Source{Name: "idempotency", FS: migrations}

// MaxRequestIDLength bounds request ids.
const MaxRequestIDLength = 128

// CheckRequestID validates an optional request_id.
func CheckRequestID(id string) error {
	if len(id) > MaxRequestIDLength {
		return errs.Invalid("request_id", "INVALID_REQUEST_ID", "request_id is longer than %d characters", MaxRequestIDLength)
	}
	return nil
}

// Hash is the fingerprint of a request stored beside its answer: sha256 of its deterministic
// encoding. A handler that saves answers itself must use it, so a retry compares equal.
func Hash(req proto.Message) ([]byte, error) { return hash(req) }

func hash(req proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	if err != nil {
		return nil, err
	}
	h := sha256.Sum256(b)
	return h[:], nil
}

// Lookup fills resp with the stored answer to (method, requestID) and reports whether there was one.
// The same request_id with a different request is refused with REQUEST_ID_REUSED. An empty
// requestID is never found.
func Lookup(ctx context.Context, tx pgx.Tx, method, requestID string, req, resp proto.Message) (bool, error) {
	if requestID == "" {
		return false, nil
	}
	var storedHash, stored []byte
	err := tx.QueryRow(ctx, `SELECT request_hash, response FROM idempotency_keys WHERE method = $1 AND request_id = $2`,
		method, requestID).Scan(&storedHash, &stored)
	if pg.IsNoRows(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("idempotency lookup: %w", err)
	}
	h, err := hash(req)
	if err != nil {
		return false, err
	}
	if !bytes.Equal(h, storedHash) {
		return false, errs.RequestIDReused
	}
	return true, proto.Unmarshal(stored, resp)
}

// Save stores the answer inside tx. Two concurrent requests with one id: the second insert waits
// for the first transaction and then fails with a unique violation; Do retries it into a Lookup hit.
func Save(ctx context.Context, tx pgx.Tx, now time.Time, method, requestID string, req, resp proto.Message) error {
	if requestID == "" {
		return nil
	}
	h, err := hash(req)
	if err != nil {
		return err
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO idempotency_keys (method, request_id, request_hash, response, created_at)
		VALUES ($1, $2, $3, $4, $5)`, method, requestID, h, b, now)
	return err
}

// Do runs fn in a transaction and stores its answer under (method, requestID); a request_id seen
// before gets the stored answer without running fn. fn's answer is returned as it was computed.
func Do[R proto.Message](ctx context.Context, pool *pgxpool.Pool, now time.Time, method, requestID string,
	req proto.Message, newResp func() R, fn func(tx pgx.Tx) (R, error)) (R, error) {
	var out R
	if err := CheckRequestID(requestID); err != nil {
		return out, err
	}
	for attempt := 0; attempt < 2; attempt++ {
		err := pg.InTx(ctx, pool, func(tx pgx.Tx) error {
			if requestID != "" {
				// Twins of one request queue here, so the second reads the first one's answer instead of
				// running fn against the state the first one left (which could refuse it).
				if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, method+" "+requestID); err != nil {
					return err
				}
			}
			prev := newResp()
			found, err := Lookup(ctx, tx, method, requestID, req, prev)
			if err != nil {
				return err
			}
			if found {
				out = prev
				return nil
			}
			resp, err := fn(tx)
			if err != nil {
				return err
			}
			out = resp
			return Save(ctx, tx, now, method, requestID, req, resp)
		})
		if pg.IsUniqueViolation(err) && requestID != "" {
			continue // a concurrent twin committed first: the next attempt reads its answer
		}
		return out, err
	}
	return out, fmt.Errorf("idempotency: request %s kept conflicting", method)
}

// MemTable is the idempotency table in memory, for the one-process development server. It is not
// locked: a memory store calls it while holding the lock that makes its own change atomic.
type MemTable struct {
	entries map[[2]string]memEntry
}

type memEntry struct {
	hash, response []byte
}

// NewMemTable returns an empty table.
func NewMemTable() *MemTable { return &MemTable{entries: map[[2]string]memEntry{}} }

// DoMem is Do for memory stores: the caller holds its store's lock, and fn must leave the store
// unchanged when it returns an error.
func DoMem[R proto.Message](t *MemTable, method, requestID string, req proto.Message, newResp func() R, fn func() (R, error)) (R, error) {
	var zero R
	if err := CheckRequestID(requestID); err != nil {
		return zero, err
	}
	h, err := hash(req)
	if err != nil {
		return zero, err
	}
	key := [2]string{method, requestID}
	if e, ok := t.entries[key]; ok && requestID != "" {
		if !bytes.Equal(e.hash, h) {
			return zero, errs.RequestIDReused
		}
		prev := newResp()
		return prev, proto.Unmarshal(e.response, prev)
	}
	resp, err := fn()
	if err != nil || requestID == "" {
		return resp, err
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		return zero, err
	}
	t.entries[key] = memEntry{hash: h, response: b}
	return resp, nil
}

// Set-based helpers for a handler that serves many requests in one transaction (pkg/batch): the
// same table, lock keys and hashes as Do, one statement for all the requests of a batch, which may
// mix methods.

// Key is where an answer is kept: the method and the request id.
type Key struct{ Method, RequestID string }

// Stored is a saved answer: its key, the fingerprint of the request (Hash) and the answer's bytes.
type Stored struct {
	Key
	RequestHash, Response []byte
}

// Matches tells whether a request with fingerprint hash (Hash) is the one that was answered.
func (s Stored) Matches(hash []byte) bool { return bytes.Equal(s.RequestHash, hash) }

// QueueLocks queues, on b, the advisory locks Do takes for (method, requestID), for every non-empty
// id, in sorted order so that two batches never wait for each other in a cycle. They are held to
// the end of the transaction: a twin of a request in this batch waits, then finds its answer.
func QueueLocks(b *pgx.Batch, method string, requestIDs []string) {
	QueueKeyLocks(b, keysOf(method, requestIDs))
}

// QueueKeyLocks is QueueLocks for keys of any methods.
func QueueKeyLocks(b *pgx.Batch, keys []Key) {
	locks := make([]string, 0, len(keys))
	for _, k := range keys {
		if k.RequestID != "" {
			locks = append(locks, k.Method+" "+k.RequestID)
		}
	}
	if len(locks) == 0 {
		return
	}
	slices.Sort(locks)
	locks = slices.Compact(locks)
	b.Queue(`SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM unnest($1::text[]) WITH ORDINALITY AS t(k, n) ORDER BY n`, locks)
}

// QueueLookup queues, on b, the lookup of the stored answers to (method, id) for the non-empty ids;
// into is filled, by request id, when the batch runs. Queue it after QueueLocks.
func QueueLookup(b *pgx.Batch, method string, requestIDs []string, into map[string]Stored) {
	queueLookup(b, keysOf(method, requestIDs), func(st Stored) { into[st.RequestID] = st })
}

// QueueKeyLookup is QueueLookup for keys of any methods, filling into by key.
func QueueKeyLookup(b *pgx.Batch, keys []Key, into map[Key]Stored) {
	queueLookup(b, keys, func(st Stored) { into[st.Key] = st })
}

func queueLookup(b *pgx.Batch, keys []Key, found func(Stored)) {
	var methods, ids []string
	for _, k := range keys {
		if k.RequestID != "" {
			methods, ids = append(methods, k.Method), append(ids, k.RequestID)
		}
	}
	if len(ids) == 0 {
		return
	}
	// One primary-key lookup per key: OFFSET 0 keeps the LATERAL subquery from being flattened into
	// a join that the planner, misled by statistics a burst has outdated (no row of this method at
	// the last ANALYZE), runs as an index scan of every row of the method per batch.
	b.Queue(`SELECT k.method, k.request_id, k.request_hash, k.response FROM unnest($1::text[], $2::text[]) AS i(method, id)
		CROSS JOIN LATERAL (SELECT * FROM idempotency_keys WHERE method = i.method AND request_id = i.id OFFSET 0) k`, methods, ids).
		Query(func(rows pgx.Rows) error {
			for rows.Next() {
				var st Stored
				if err := rows.Scan(&st.Method, &st.RequestID, &st.RequestHash, &st.Response); err != nil {
					return err
				}
				found(st)
			}
			return rows.Err()
		})
}

func keysOf(method string, requestIDs []string) []Key {
	keys := make([]Key, len(requestIDs))
	for i, id := range requestIDs {
		keys[i] = Key{method, id}
	}
	return keys
}

// Replay answers req from a stored answer, as Lookup does: resp is filled and true returned, or
// REQUEST_ID_REUSED when req is not the request that was answered.
func Replay(st Stored, req, resp proto.Message) (bool, error) {
	h, err := hash(req)
	if err != nil {
		return false, err
	}
	if !st.Matches(h) {
		return false, errs.RequestIDReused
	}
	return true, proto.Unmarshal(st.Response, resp)
}

// Answer is one request's answer to save with QueueSave.
type Answer struct {
	RequestID string
	Req, Resp proto.Message
}

// QueueSave queues, on b, one insert of every answer with a request id, as Save does.
func QueueSave(b *pgx.Batch, now time.Time, method string, answers []Answer) error {
	var rows []Stored
	for _, a := range answers {
		if a.RequestID == "" {
			continue
		}
		h, err := hash(a.Req)
		if err != nil {
			return err
		}
		r, err := proto.Marshal(a.Resp)
		if err != nil {
			return err
		}
		rows = append(rows, Stored{Key: Key{method, a.RequestID}, RequestHash: h, Response: r})
	}
	QueueSaveStored(b, now, rows)
	return nil
}

// QueueSaveStored queues, on b, one insert of answers already fingerprinted and encoded (Hash and
// proto.Marshal of the response), of any methods.
func QueueSaveStored(b *pgx.Batch, now time.Time, rows []Stored) {
	if len(rows) == 0 {
		return
	}
	methods, ids := make([]string, len(rows)), make([]string, len(rows))
	hashes, resps := make([][]byte, len(rows)), make([][]byte, len(rows))
	for i, r := range rows {
		methods[i], ids[i], hashes[i], resps[i] = r.Method, r.RequestID, r.RequestHash, r.Response
	}
	b.Queue(`INSERT INTO idempotency_keys (method, request_id, request_hash, response, created_at)
		SELECT m, id, h, r, $1 FROM unnest($2::text[], $3::text[], $4::bytea[], $5::bytea[]) AS t(m, id, h, r)`,
		now, methods, ids, hashes, resps)
}
