package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// ListOrders pages through orders newest first, optionally only those in state (StateUnspecified: all).
func (s *Store) ListOrders(ctx context.Context, state domain.State, pageSize int, token string) ([]*filingv1.Order, string, error) {
	page, err := ParsePage(state, pageSize, token)
	if err != nil {
		return nil, "", err
	}
	var afterTime *time.Time
	afterID := ""
	if page.After != nil {
		afterTime, afterID = &page.After.CreatedAt, page.After.OrderID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders
		WHERE ($1 = '' OR state = $1) AND ($2::timestamptz IS NULL OR (created_at, order_id) < ($2, $3))
		ORDER BY created_at DESC, order_id DESC LIMIT $4`, filterName(state), afterTime, afterID, page.Size+1)
	if err != nil {
		return nil, "", fmt.Errorf("list orders: %w", err)
	}
	orders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (*domain.Order, error) {
		o, err := scanOrder(r)
		return &o, err
	})
	if err != nil {
		return nil, "", fmt.Errorf("list orders: %w", err)
	}
	orders, next := page.Next(orders)
	if err := loadDetails(ctx, s.pool, orders); err != nil {
		return nil, "", err
	}
	out := make([]*filingv1.Order, len(orders))
	for i, o := range orders {
		out[i] = OrderProto(*o)
	}
	return out, next, nil
}
