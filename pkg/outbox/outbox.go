// Package outbox is the transactional outbox: a service writes the calls it owes other services in
// the same transaction as its own change, and a relay delivers them at least once. Receivers are
// idempotent (request ids), so at-least-once delivery gives an exactly-once effect and no dual write.
package outbox

import (
	"context"
	"embed"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/observe"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/seal"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations creates the outbox table in the service's schema.
var Migrations = pg.Source{Name: "outbox", FS: migrations}

// Message is one call a change owes another service: the engine writes it in the same transaction
// (or under the same lock) as the change, and the relay delivers it to the Handler of Target.
type Message struct {
	Target string
	Msg    proto.Message
	// Sensitive payloads (a code, phones, ID tails) are sealed at rest under the writer's keyring
	// (see Encode) and wiped if the row is ever parked.
	Sensitive bool
}

// EnqueueAll writes msgs inside tx, in order, in one statement; sensitive payloads are sealed with
// keys (nil: kept in the clear, see Encode).
func EnqueueAll(ctx context.Context, tx pgx.Tx, keys *seal.Keyring, now time.Time, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	r, err := Encode(keys, msgs)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, insertRowsSQL, r.args(now)...); err != nil {
		return fmt.Errorf("outbox: enqueue %s: %w", msgs[0].Target, err)
	}
	return nil
}

// QueueInsert queues, on b, one statement that writes msgs in order (sealed as EnqueueAll seals
// them): EnqueueAll for a transaction sent as a pgx.Batch.
func QueueInsert(b *pgx.Batch, keys *seal.Keyring, now time.Time, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	r, err := Encode(keys, msgs)
	if err != nil {
		return err
	}
	b.Queue(insertRowsSQL, r.args(now)...)
	return nil
}

// InsertIntoSQL is the head of an insert into the outbox, for a batch statement that selects its rows
// itself (a CTE that writes only the rows of the changes it made): follow it with a query of
// (target, payload, created_at, available_at, sensitive, key_id), the columns of Encode's Rows.
const InsertIntoSQL = `INSERT INTO outbox (target, payload, created_at, available_at, sensitive, key_id) `

// insertRowsSQL writes Rows in order: now $1, then Rows.args' arrays.
const insertRowsSQL = InsertIntoSQL + `SELECT t.target, t.payload, $1, $1, t.sensitive, t.key_id
		FROM unnest($2::text[], $3::bytea[], $4::boolean[], $5::text[]) WITH ORDINALITY AS t(target, payload, sensitive, key_id, n)
		ORDER BY t.n`

// Handler delivers one payload. An error whose gRPC code says the receiver will never accept it
// (InvalidArgument, NotFound, FailedPrecondition, ...) parks the row as dead; any other error retries.
type Handler func(ctx context.Context, payload []byte) error

// Call adapts a gRPC client method to a Handler.
func Call[T any, PT interface {
	*T
	proto.Message
}, R any](call func(context.Context, PT, ...grpc.CallOption) (R, error)) Handler {
	return func(ctx context.Context, payload []byte) error {
		req := PT(new(T))
		if err := proto.Unmarshal(payload, req); err != nil {
			return status.Errorf(codes.InvalidArgument, "outbox payload: %v", err)
		}
		noteIDs(ctx, req)
		_, err := call(ctx, req)
		return err
	}
}

// Row is one claimed call. A queue hands out its payload opened: the request as the writer marshalled it.
type Row struct {
	ID       int64
	Target   string
	Payload  []byte
	Attempts int
	// KeyID names the key the payload is sealed with at rest, "" for a payload kept in the clear.
	KeyID string
	// Unopened says why a sealed payload could not be opened (Payload is then nil): its key is not
	// in the queue's keyring (seal.ErrUnknownKey), or it does not authenticate.
	Unopened error
}

// Queue is the storage a relay claims from: the service's PostgreSQL table (PGQueue) or, in the
// one-process development server, memory (MemQueue).
type Queue interface {
	// Claim hides up to limit rows due at now for lease and returns them.
	Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Row, error)
	// Extend moves the lease of claimed rows from from to until, each only if no later claim took it
	// (attempts) and its available_at is still from (a retry or park since leaves it alone): the lease
	// of a batch still being delivered.
	Extend(ctx context.Context, rows []Row, from, until time.Time) error
	// Unclaim makes the rows a Claim(now, lease) hid due again at now: after a claim whose answer was
	// lost (the connection dropped at its COMMIT), they would otherwise wait out the lease unsent.
	Unclaim(ctx context.Context, now time.Time, lease time.Duration) error
	// Delivered removes delivered rows, all of them in one statement (the relay passes a batch's).
	Delivered(ctx context.Context, ids ...int64) error
	// Retry makes a row due again at at, unless another claim took it since (attempts moved on).
	Retry(ctx context.Context, row Row, at time.Time, lastErr string) error
	// Park keeps a row the receiver refused for good out of the way, wiping a sensitive payload,
	// unless another claim took it since.
	Park(ctx context.Context, row Row, now time.Time, lastErr string) error
	// Pending lists up to limit undelivered live rows, oldest first (tests, status pages).
	Pending(ctx context.Context, limit int) ([]Row, error)
}

// DefaultLease is how long a claimed row stays hidden without a renewal: how late the rows of a
// replica that died mid-batch go out.
const DefaultLease = 6 * time.Second

// DefaultLinger is the wait after a Wake before a claim: under load the rows of ~20 ms of commits go
// out in one claim, and their calls reach the receivers together, where they are committed in
// groups (fewer claims, bigger groups: the Verify benchmark's commits per call fell by a third).
// An SMS code or an outcome leaves 20 ms later, which nobody waiting for it can tell.
const DefaultLinger = 20 * time.Millisecond

// DefaultParallel and DefaultPipeline are a Relay's defaults: up to 2 batches of 32 calls at once,
// the concurrency a receiver sees from one replica (the benchmark drives SendMessage with it).
const (
	DefaultParallel = 32
	DefaultPipeline = 2
)

// DefaultMaxPerCall is how many rows one BatchHandler call takes at most: a claim's rows of one
// target in one call and one receiver transaction, bounded so that one call stays well within
// CallTimeout and a receiver's statement sizes.
const DefaultMaxPerCall = 100

// Relay delivers outbox rows. Any number of replicas may run: each claims rows with
// FOR UPDATE SKIP LOCKED and hides them for Lease, which it renews every Lease/3 while the batch is
// being delivered; a crashed replica's rows reappear within a Lease.
// Run claims the next batch while earlier ones are still being delivered (up to Pipeline batches in
// flight, each delivered Parallel at a time), and deletes a batch's delivered rows in one statement.
type Relay struct {
	Queue    Queue
	Log      *zap.Logger
	Clock    clock.Clock
	Handlers map[string]Handler
	// BatchHandlers deliver the claimed rows of their target together, up to MaxPerCall rows a call;
	// a target with both is delivered in batches, and one by one through its Handler only when the
	// receiver does not know the batch method yet (Unimplemented: a rolling upgrade).
	BatchHandlers map[string]BatchHandler
	// MaxPerCall bounds the rows of one BatchHandler call (DefaultMaxPerCall when 0).
	MaxPerCall int
	// Batch is how many rows one claim takes; Parallel how many of one batch are delivered at once.
	Batch, Parallel int
	// Pipeline is how many claimed batches Run delivers at once (so up to Pipeline*Parallel calls).
	Pipeline int
	// Lease hides a claimed row from other replicas (DefaultLease when 0); the relay renews it while
	// the row's batch is being delivered, so a call may take longer (CallTimeout bounds one call).
	Lease, CallTimeout time.Duration
	// Poll is the idle wait between claims when nothing woke the relay.
	Poll time.Duration
	// RenewEvery is how often the lease of a batch being delivered is renewed (Lease/3 when 0).
	RenewEvery time.Duration
	// Linger is how long the relay waits after a Wake before it claims, so that the rows of
	// concurrent commits go out in one batch (DefaultLinger suits a service; zero claims at once).
	Linger time.Duration
	// Observer, when set, gets the relay's metrics (icp_outbox_*) and a span per delivery.
	Observer *observe.Observer

	wakeOnce sync.Once
	wake     chan struct{}
	metrics  *metrics
}

// Wake makes the relay look for rows now instead of at its next poll; call it after a commit.
func (r *Relay) Wake() {
	r.init()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *Relay) init() {
	r.wakeOnce.Do(func() {
		r.wake = make(chan struct{}, 1)
		if r.Batch == 0 {
			r.Batch = 128
		}
		if r.Parallel == 0 {
			r.Parallel = DefaultParallel
		}
		if r.MaxPerCall <= 0 {
			r.MaxPerCall = DefaultMaxPerCall
		}
		if r.Pipeline == 0 {
			r.Pipeline = DefaultPipeline
		}
		if r.CallTimeout == 0 {
			r.CallTimeout = 10 * time.Second
		}
		if r.Lease == 0 {
			r.Lease = DefaultLease
		}
		if r.Poll == 0 {
			r.Poll = 250 * time.Millisecond
		}
		if r.RenewEvery <= 0 {
			r.RenewEvery = max(r.Lease/3, time.Millisecond) // a ticker needs a positive period
		}
		if r.Observer != nil {
			r.metrics = r.observe(r.Observer)
		}
	})
}

// Run delivers until ctx ends. A full batch is followed by the next claim at once, delivered
// alongside it (at most Pipeline batches in flight); otherwise it waits for Wake or Poll. It
// returns once the batches in flight have been delivered and recorded.
func (r *Relay) Run(ctx context.Context) error {
	r.init()
	slots := make(chan struct{}, r.Pipeline)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case slots <- struct{}{}:
		}
		batch, err := r.claim(ctx)
		if len(batch.rows) > 0 {
			inflight.Go(func() {
				defer func() { <-slots }()
				r.deliverBatch(ctx, batch)
			})
		} else {
			<-slots
		}
		if len(batch.rows) == r.Batch && err == nil {
			continue // more may be waiting
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-r.wake:
			if r.Linger > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(r.Linger):
				}
				// The commits that woke the relay meanwhile are seen by the claim below: their
				// wakes would only cause an empty claim after it.
				select {
				case <-r.wake:
				default:
				}
			}
		case <-time.After(r.Poll):
		}
	}
}

// claim claims the next batch. When the claim fails it may still have committed (a connection lost
// at COMMIT: a database restart); its rows are then handed back, or they would stay hidden for the
// whole lease, an SMS code held back with them.
func (r *Relay) claim(ctx context.Context) (claimed, error) {
	now := r.Clock.Now()
	batch, err := r.Queue.Claim(ctx, now, r.Batch, r.Lease)
	if err == nil {
		// The lease end as stored: timestamps are kept to the microsecond.
		return claimed{rows: batch, leaseEnd: now.Truncate(time.Microsecond).Add(r.Lease)}, nil
	}
	if ctx.Err() == nil {
		r.Log.Warn("outbox claim failed", zap.Error(err))
	}
	if uerr := bookkeep(ctx, func(bg context.Context) error { return r.Queue.Unclaim(bg, now, r.Lease) }); uerr != nil {
		r.Log.Warn("outbox: could not hand back the rows of a failed claim; they wait for their lease", zap.Error(uerr))
	}
	return claimed{}, err
}

// claimed is a claimed batch and the lease end its claim gave the rows.
type claimed struct {
	rows     []Row
	leaseEnd time.Time
}

// RunOnce claims one batch and delivers it; it returns how many rows it claimed.
func (r *Relay) RunOnce(ctx context.Context) (int, error) {
	r.init()
	batch, err := r.claim(ctx)
	if err != nil {
		return 0, err
	}
	r.deliverBatch(ctx, batch)
	return len(batch.rows), nil
}

// deliverBatch delivers a claimed batch Parallel calls at a time (a call is one row, or up to
// MaxPerCall rows of a target with a BatchHandler), then deletes the delivered rows in one statement
// (failed ones were rescheduled or parked one by one, fenced by their attempts).
func (r *Relay) deliverBatch(ctx context.Context, c claimed) {
	batch := c.rows
	if len(batch) == 0 {
		return
	}
	sem := make(chan struct{}, r.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	delivered := make([]int64, 0, len(batch))
	// open holds the rows whose outcome is not recorded yet; their lease is renewed until it is.
	open := make(map[int64]Row, len(batch))
	for _, x := range batch {
		open[x.ID] = x
	}
	stopRenew := r.renew(ctx, &mu, open, c.leaseEnd)
	done := func(rows []Row, ok []bool) {
		mu.Lock()
		defer mu.Unlock()
		for i, x := range rows {
			if ok[i] {
				delivered = append(delivered, x.ID)
			} else {
				delete(open, x.ID) // rescheduled or parked: no longer ours to keep
			}
		}
	}
	for _, call := range r.calls(batch) {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if call.h == nil {
				done(call.rows, []bool{r.deliver(ctx, call.rows[0])})
				return
			}
			done(call.rows, r.deliverMany(ctx, call.rows, call.h))
		})
	}
	wg.Wait()
	stopRenew()
	if len(delivered) == 0 {
		return
	}
	if err := bookkeep(ctx, func(bg context.Context) error { return r.Queue.Delivered(bg, delivered...) }); err != nil {
		r.Log.Warn("outbox: delivered but not deleted; they will be delivered again", zap.Int("rows", len(delivered)), zap.Error(err))
	}
}

// renew extends the lease of the rows left in open (ending at leaseEnd) every RenewEvery until the
// returned stop is called. A failed renewal is only logged: the rows may then go out twice, which
// receivers dedup.
func (r *Relay) renew(ctx context.Context, mu *sync.Mutex, open map[int64]Row, leaseEnd time.Time) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(r.RenewEvery)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			mu.Lock()
			rows := make([]Row, 0, len(open))
			for _, x := range open {
				rows = append(rows, x)
			}
			mu.Unlock()
			if len(rows) == 0 {
				continue
			}
			until := r.Clock.Now().Truncate(time.Microsecond).Add(r.Lease)
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.Lease/3)
			err := r.Queue.Extend(rctx, rows, leaseEnd, until)
			cancel()
			if err != nil {
				r.Log.Warn("outbox: could not renew the lease of rows being delivered", zap.Int("rows", len(rows)), zap.Error(err))
				continue
			}
			leaseEnd = until
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}
}

// BookkeepingLimit bounds how long the relay keeps trying to record an outcome.
const BookkeepingLimit = 10 * time.Second

// bookkeep records an outcome, retrying with a short backoff while the database is unreachable
// (a restart): a row whose outcome is lost stays hidden for its whole lease, which would delay an
// SMS code or an order's return by tens of seconds. It must land even while shutting down, so it
// does not follow ctx's cancellation, only BookkeepingLimit.
func bookkeep(ctx context.Context, record func(context.Context) error) error {
	bg, cancel := context.WithTimeout(context.WithoutCancel(ctx), BookkeepingLimit)
	defer cancel()
	wait := 100 * time.Millisecond
	for {
		err := record(bg)
		if err == nil {
			return nil
		}
		select {
		case <-bg.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// deliver makes one call and records its result (settle); it reports whether the call succeeded
// (the caller deletes delivered rows by the batch).
func (r *Relay) deliver(ctx context.Context, x Row) bool {
	note := &delivery{}
	ctx, span := r.metrics.startSpan(context.WithValue(ctx, deliveryKey{}, note), x)
	h, ok := r.Handlers[x.Target]
	var err error
	if x.Unopened != nil {
		err = unopenedError(x)
	} else if !ok {
		err = status.Errorf(codes.Unimplemented, "no handler for outbox target %q", x.Target)
	} else {
		callCtx, cancel := context.WithTimeout(ctx, r.CallTimeout)
		err = h(callCtx, x.Payload)
		cancel()
	}
	endSpan(span, err, note)
	return r.settle(ctx, x, err, note)
}

// settle records the result err of delivering x, counted and logged with what note learnt of its
// payload: nothing yet for a success (the batch's rows are deleted together), a park or a retry
// with backoff otherwise. It reports whether x was delivered.
func (r *Relay) settle(ctx context.Context, x Row, err error, note *delivery) bool {
	fields := []zap.Field{zap.Int64("outbox_id", x.ID), zap.String("target", x.Target), zap.Int("attempt", x.Attempts)}
	if note.orderID != "" {
		fields = append(fields, zap.String("order_id", note.orderID))
	}
	if note.requestID != "" {
		fields = append(fields, zap.String("request_id", note.requestID))
	}
	if id := observe.TraceID(ctx); id != "" {
		fields = append(fields, zap.String("trace_id", id))
	}
	log := r.Log.With(fields...)
	switch {
	case err == nil:
		r.metrics.count(x.Target, resultDelivered)
		return true
	case permanent(err):
		r.metrics.count(x.Target, resultParked)
		log.Error("outbox: receiver refused the call for good; parked as dead", zap.Error(err))
		if err := bookkeep(ctx, func(bg context.Context) error { return r.Queue.Park(bg, x, r.Clock.Now(), err.Error()) }); err != nil {
			log.Warn("outbox: could not park the row", zap.Error(err))
		}
	default:
		delay := Backoff(x.Attempts)
		r.metrics.count(x.Target, resultRetried)
		log.Warn("outbox: delivery failed, will retry", zap.Duration("retry_in", delay), zap.Error(err))
		if err := bookkeep(ctx, func(bg context.Context) error { return r.Queue.Retry(bg, x, r.Clock.Now().Add(delay), err.Error()) }); err != nil {
			log.Warn("outbox: could not reschedule the row", zap.Error(err))
		}
	}
	return false
}

// unopenedError is the delivery error of a row whose sealed payload did not open. A key missing from
// the keyring (retired while rows sealed with it were pending) is retried, so the row goes out once
// the key is back in --seal-keys; a payload that does not authenticate never will, and is parked.
func unopenedError(x Row) error {
	if keyMissing(x.Unopened) {
		return status.Errorf(codes.Unavailable, "outbox payload sealed with key %q, not in this service's seal keys: "+
			"put the key back until no row needs it: %v", x.KeyID, x.Unopened)
	}
	return status.Errorf(codes.DataLoss, "outbox payload does not open: %v", x.Unopened)
}

// Backoff is the wait before retry number attempts+1: 200ms doubling to at most 30s.
func Backoff(attempts int) time.Duration {
	d := 200 * time.Millisecond
	for i := 1; i < attempts && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

func permanent(err error) bool {
	switch status.Code(err) {
	// DataLoss: a sealed payload that does not open (unopenedError), which no retry changes.
	case codes.DataLoss, codes.InvalidArgument, codes.NotFound, codes.FailedPrecondition, codes.AlreadyExists,
		codes.PermissionDenied, codes.Unimplemented, codes.OutOfRange:
		return true
	}
	return false
}
