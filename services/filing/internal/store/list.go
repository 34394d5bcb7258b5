package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// Page sizes of ListOrders.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// pageToken is the position after the last order of a page; it also carries the filter, so a token
// cannot be replayed against another query. Clients treat it as opaque.
type pageToken struct {
	CreatedAt int64  `json:"c"` // unix microseconds
	OrderID   string `json:"o"`
	State     string `json:"s,omitempty"`
}

func encodeToken(t pageToken) string {
	b, _ := json.Marshal(t)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeToken(s string, state string) (*pageToken, error) {
	if s == "" {
		return nil, nil
	}
	bad := errs.Invalid("page_token", "INVALID_PAGE_TOKEN", "page_token was not returned by this query")
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, bad
	}
	var t pageToken
	if json.Unmarshal(b, &t) != nil || t.OrderID == "" || t.State != state {
		return nil, bad
	}
	return &t, nil
}

// ListOrders pages through orders newest first, optionally only those in state (StateUnspecified: all).
func (s *Store) ListOrders(ctx context.Context, state domain.State, pageSize int, token string) ([]*filingv1.Order, string, error) {
	switch {
	case pageSize <= 0:
		pageSize = DefaultPageSize
	case pageSize > MaxPageSize:
		pageSize = MaxPageSize
	}
	filter := ""
	if state != domain.StateUnspecified {
		filter = state.String()
	}
	after, err := decodeToken(token, filter)
	if err != nil {
		return nil, "", err
	}
	var afterTime *time.Time
	afterID := ""
	if after != nil {
		t := time.UnixMicro(after.CreatedAt).UTC()
		afterTime, afterID = &t, after.OrderID
	}
	rows, err := s.pool.Query(ctx, `SELECT `+orderColumns+` FROM orders
		WHERE ($1 = '' OR state = $1) AND ($2::timestamptz IS NULL OR (created_at, order_id) < ($2, $3))
		ORDER BY created_at DESC, order_id DESC LIMIT $4`, filter, afterTime, afterID, pageSize+1)
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
	next := ""
	if len(orders) > pageSize {
		orders = orders[:pageSize]
		last := orders[pageSize-1]
		next = encodeToken(pageToken{CreatedAt: last.CreatedAt.UnixMicro(), OrderID: last.ID, State: filter})
	}
	if err := loadDetails(ctx, s.pool, orders); err != nil {
		return nil, "", err
	}
	out := make([]*filingv1.Order, len(orders))
	for i, o := range orders {
		out[i] = OrderProto(*o)
	}
	return out, next, nil
}
