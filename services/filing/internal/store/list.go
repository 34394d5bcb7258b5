package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// ListOrders reads up to limit orders newest first (see app.Engine).
func (s *Store) ListOrders(ctx context.Context, tenant string, state domain.State, after *domain.Position, limit int) ([]domain.Order, error) {
	var afterTime *time.Time
	afterID := ""
	if after != nil {
		afterTime, afterID = &after.CreatedAt, after.OrderID
	}
	filter := ""
	if state != domain.StateUnspecified {
		filter = state.String()
	}
	rows, err := s.pool.Query(ctx, queries.ListOrders, filter, afterTime, afterID, limit, tenant)
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	orders, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (domain.Order, error) { return scanOrder(r) })
	if err != nil {
		return nil, fmt.Errorf("list orders: %w", err)
	}
	ptrs := make([]*domain.Order, len(orders))
	for i := range orders {
		ptrs[i] = &orders[i]
	}
	if err := loadDetails(ctx, s.pool, ptrs); err != nil {
		return nil, err
	}
	return orders, nil
}
