package outbox

import (
	"context"
	"slices"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/seal"
)

// MemQueue is an outbox in memory for the one-process development server. A memory store adds rows
// with Add while it holds its own lock, which is what makes the write and the outbox row atomic there.
// Its rows are encoded as PGQueue's are (Encode: sensitive payloads sealed under its keys) and opened
// when handed out, so the development server runs the sealing too.
type MemQueue struct {
	keys   *seal.Keyring
	mu     sync.Mutex
	nextID int64
	rows   map[int64]*memRow
}

type memRow struct {
	Row
	availableAt time.Time
	createdAt   time.Time
	sensitive   bool
	dead        bool
	lastErr     string
}

var _ Queue = (*MemQueue)(nil)

// NewMemQueue returns an empty queue whose sensitive payloads are sealed with keys (nil: kept in the
// clear, as Encode says).
func NewMemQueue(keys *seal.Keyring) *MemQueue {
	return &MemQueue{keys: keys, rows: map[int64]*memRow{}}
}

// Add queues a call to target; sensitive payloads are sealed, and wiped when parked.
func (q *MemQueue) Add(now time.Time, target string, msg proto.Message, sensitive bool) error {
	return q.AddAll(now, []Message{{Target: target, Msg: msg, Sensitive: sensitive}})
}

// AddAll queues msgs; the caller holds its store's lock, which makes the rows part of its change.
func (q *MemQueue) AddAll(now time.Time, msgs []Message) error {
	r, err := Encode(q.keys, msgs)
	if err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	for i := range r.Targets {
		q.nextID++
		q.rows[q.nextID] = &memRow{Row: Row{ID: q.nextID, Target: r.Targets[i], Payload: r.Payloads[i], KeyID: r.KeyIDs[i]},
			availableAt: now, createdAt: now, sensitive: r.Sensitive[i]}
	}
	return nil
}

// handOut is a stored row as the queue hands it out: opened.
func (q *MemQueue) handOut(r *memRow) Row {
	x := r.Row
	x.open(q.keys)
	return x
}

// Claim hides up to limit due rows for lease, oldest first.
func (q *MemQueue) Claim(_ context.Context, now time.Time, limit int, lease time.Duration) ([]Row, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var due []*memRow
	for _, r := range q.rows {
		if !r.dead && !r.availableAt.After(now) {
			due = append(due, r)
		}
	}
	slices.SortFunc(due, func(a, b *memRow) int {
		if c := a.availableAt.Compare(b.availableAt); c != 0 {
			return c
		}
		return int(a.ID - b.ID)
	})
	var out []Row
	for _, r := range due[:min(limit, len(due))] {
		r.availableAt = now.Truncate(time.Microsecond).Add(lease) // to the microsecond, as PostgreSQL keeps it
		r.Attempts++
		out = append(out, q.handOut(r))
	}
	return out, nil
}

// Extend moves the lease of rows still claimed by their claim (attempts) from from to until.
func (q *MemQueue) Extend(_ context.Context, rows []Row, from, until time.Time) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, x := range rows {
		if r, ok := q.rows[x.ID]; ok && r.Attempts == x.Attempts && !r.dead && r.availableAt.Equal(from) {
			r.availableAt = until
		}
	}
	return nil
}

// Unclaim makes the rows a Claim(now, lease) hid due at now.
func (q *MemQueue) Unclaim(_ context.Context, now time.Time, lease time.Duration) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, r := range q.rows {
		if !r.dead && r.availableAt.Equal(now.Truncate(time.Microsecond).Add(lease)) {
			r.availableAt = now
		}
	}
	return nil
}

// Delivered removes the rows.
func (q *MemQueue) Delivered(_ context.Context, ids ...int64) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, id := range ids {
		delete(q.rows, id)
	}
	return nil
}

// Retry makes the row due at at, if no later claim took it.
func (q *MemQueue) Retry(_ context.Context, row Row, at time.Time, lastErr string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r, ok := q.rows[row.ID]; ok && r.Attempts == row.Attempts {
		r.availableAt, r.lastErr = at, lastErr
	}
	return nil
}

// Park marks the row dead and wipes a sensitive payload, if no later claim took it.
func (q *MemQueue) Park(_ context.Context, row Row, _ time.Time, lastErr string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if r, ok := q.rows[row.ID]; ok && r.Attempts == row.Attempts {
		r.dead, r.lastErr = true, lastErr
		if r.sensitive {
			r.Payload = nil
		}
	}
	return nil
}

// Len counts the rows not yet delivered (dead ones included), for tests and status pages.
func (q *MemQueue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.rows)
}

// Pending lists undelivered live rows, oldest first.
func (q *MemQueue) Pending(_ context.Context, limit int) ([]Row, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Row
	for _, r := range q.rows {
		if !r.dead {
			out = append(out, q.handOut(r))
		}
	}
	slices.SortFunc(out, func(a, b Row) int { return int(a.ID - b.ID) })
	return out[:min(limit, len(out))], nil
}

// Stats counts the rows per target.
func (q *MemQueue) Stats(context.Context) ([]TargetStats, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	by := map[string]*TargetStats{}
	for _, r := range q.rows {
		st := by[r.Target]
		if st == nil {
			st = &TargetStats{Target: r.Target}
			by[r.Target] = st
		}
		if r.dead {
			st.Dead++
			continue
		}
		st.Pending++
		if st.Oldest.IsZero() || r.createdAt.Before(st.Oldest) {
			st.Oldest = r.createdAt
		}
	}
	out := make([]TargetStats, 0, len(by))
	for _, st := range by {
		out = append(out, *st)
	}
	return out, nil
}
