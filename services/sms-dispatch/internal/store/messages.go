package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// getAll returns the stored messages among ids, one primary-key lookup each.
func (s *Store) getAll(ctx context.Context, ids []string) ([]domain.Message, error) {
	rows, err := s.pool.Query(ctx, queries.GetAll, ids)
	if err != nil {
		return nil, err
	}
	return s.collectMessages(rows)
}

// Get returns one message, or NotFound.
func (s *Store) Get(ctx context.Context, id string) (domain.Message, error) {
	m, err := s.get(ctx, s.pool, id)
	if err != nil && errs.Reason(err) != domain.ReasonMessageNotFound {
		return domain.Message{}, fmt.Errorf("get message: %w", err)
	}
	return m, err
}

func (s *Store) get(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id string) (domain.Message, error) {
	m, err := s.scanMessage(q.QueryRow(ctx, queries.Get, id))
	if pg.IsNoRows(err) {
		return domain.Message{}, errs.NotFound(domain.ReasonMessageNotFound, "no message with this message_id")
	}
	return m, err
}

// List reads up to limit messages newest first (domain.Before), only orderID's ("" = all), strictly
// after after (nil: from the newest).
func (s *Store) List(ctx context.Context, orderID string, after *domain.Position, limit int) ([]domain.Message, error) {
	var afterAt time.Time
	afterID := ""
	if after != nil {
		afterAt, afterID = after.CreatedAt, after.ID
	}
	rows, err := s.pool.Query(ctx, queries.List, orderID, after != nil, afterAt, afterID, limit)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	msgs, err := s.collectMessages(rows)
	if err != nil {
		return nil, fmt.Errorf("list messages: %w", err)
	}
	return msgs, nil
}
