package outbox

import "testing"

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
