package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/services/verification/internal/domain"
)

// Link finds the challenge of a link hash with its session (see app.Engine), by the unique index on
// challenges.link_hash, and the time to judge it at.
func (s *Store) Link(ctx context.Context, hash []byte) (domain.LinkRecord, time.Time, error) {
	var r domain.LinkRecord
	var sessState, chState, delivery string
	sess, c := &r.Session, &r.Challenge
	err := s.pool.QueryRow(ctx, queries.LinkChallenge, hash).Scan(&sess.ID, &sess.OrderID, &sess.Submission, &sessState,
		&sess.DeadlineAt, &sess.Locale, &sess.CreatedAt, &sess.Tenant,
		&c.ID, &c.SessionID, &c.VerifierID, &c.Phone, &c.Roles, &c.CodeHash, &c.CodeKeyID, &c.Generation,
		&c.Failed, &c.ResendsUsed, &c.LastSentAt, &chState, &c.PassedAt, &c.LinkHash, &delivery)
	now := s.clock.Now()
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.LinkRecord{}, now, nil
	}
	if err != nil {
		return domain.LinkRecord{}, now, fmt.Errorf("link: %w", err)
	}
	sess.State, c.State, r.Found = domain.SessionState(sessState), domain.ChallengeState(chState), true
	c.Delivery = domain.CodeDelivery(delivery)
	return r, now, nil
}
