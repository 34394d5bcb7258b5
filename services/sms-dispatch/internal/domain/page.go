package domain

import "time"

// Position is a place in ListMessages order (Before): the sort key of the last message of a page.
type Position struct {
	CreatedAt time.Time
	ID        string
}

// PositionOf is the position of m in ListMessages order.
func PositionOf(m Message) Position { return Position{CreatedAt: m.CreatedAt, ID: m.ID} }

// After tells whether m comes after p in ListMessages order, so belongs to the page that resumes at p.
func (p Position) After(m Message) bool {
	return Before(Message{CreatedAt: p.CreatedAt, ID: p.ID}, m)
}

// Before tells whether a comes before b in ListMessages order (newest first, then message_id
// descending): the order both engines page in.
func Before(a, b Message) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return a.CreatedAt.After(b.CreatedAt)
	}
	return a.ID > b.ID
}

// DueBefore tells whether a is claimed before b: earliest next attempt first, then message_id, so
// that workers take due messages in a deterministic order on both engines.
func DueBefore(a, b Message) bool {
	if !a.NextAttempt.Equal(b.NextAttempt) {
		return a.NextAttempt.Before(b.NextAttempt)
	}
	return a.ID < b.ID
}
