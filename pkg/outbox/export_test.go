package outbox

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/seal"
)

// WipedDeadForTest counts parked rows whose payload was wiped.
func (q *MemQueue) WipedDeadForTest(*testing.T) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, r := range q.rows {
		if r.dead && len(r.Payload) == 0 {
			n++
		}
	}
	return n
}

// StoredForTest lists the rows as kept (payloads sealed), in id order.
func (q *MemQueue) StoredForTest(*testing.T) []Row {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Row
	for _, r := range q.rows {
		out = append(out, r.Row)
	}
	slices.SortFunc(out, func(a, b Row) int { return int(a.ID - b.ID) })
	return out
}

// RestoreForTest overwrites a kept row's target and payload.
func (q *MemQueue) RestoreForTest(_ *testing.T, id int64, target string, payload []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.rows[id].Target, q.rows[id].Payload = target, payload
}

// WithKeysForTest is a view of q that opens with keys instead (another replica's keyring).
func (q *MemQueue) WithKeysForTest(keys *seal.Keyring) Queue {
	return &memView{MemQueue: q, keys: keys}
}

type memView struct {
	*MemQueue
	keys *seal.Keyring
}

func (v *memView) Claim(ctx context.Context, now time.Time, limit int, lease time.Duration) ([]Row, error) {
	rows, err := v.MemQueue.Claim(ctx, now, limit, lease)
	return v.reopen(rows), err
}

func (v *memView) Pending(ctx context.Context, limit int) ([]Row, error) {
	rows, err := v.MemQueue.Pending(ctx, limit)
	return v.reopen(rows), err
}

// reopen opens the rows' stored payloads with the view's keys.
func (v *memView) reopen(rows []Row) []Row {
	v.mu.Lock()
	defer v.mu.Unlock()
	for i := range rows {
		x := v.rows[rows[i].ID].Row
		x.Attempts = rows[i].Attempts
		x.open(v.keys)
		rows[i] = x
	}
	return rows
}
