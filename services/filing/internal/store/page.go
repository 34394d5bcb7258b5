package store

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// Page sizes of ListOrders.
const (
	DefaultPageSize = 50
	MaxPageSize     = 200
)

// Page is one ListOrders query, decoded: orders newest first by (CreatedAt, ID), only those in
// State when it is set, strictly after the position of the page token.
type Page struct {
	State domain.State
	Size  int
	After *Position // nil: from the newest
}

// Position is a place in the (created_at DESC, order_id DESC) order.
type Position struct {
	CreatedAt time.Time
	OrderID   string
}

// Before tells whether an order created at createdAt with id comes after p in the listing.
func (p Position) Before(createdAt time.Time, id string) bool {
	if c := createdAt.Compare(p.CreatedAt); c != 0 {
		return c < 0
	}
	return id < p.OrderID
}

// pageToken is the position after the last order of a page; it also carries the filter, so a token
// cannot be replayed against another query. Clients treat it as opaque.
type pageToken struct {
	CreatedAt int64  `json:"c"` // unix microseconds
	OrderID   string `json:"o"`
	State     string `json:"s,omitempty"`
}

func filterName(s domain.State) string {
	if s == domain.StateUnspecified {
		return ""
	}
	return s.String()
}

// ParsePage checks a ListOrders query and clamps its page size.
func ParsePage(state domain.State, pageSize int, token string) (Page, error) {
	switch {
	case pageSize <= 0:
		pageSize = DefaultPageSize
	case pageSize > MaxPageSize:
		pageSize = MaxPageSize
	}
	p := Page{State: state, Size: pageSize}
	if token == "" {
		return p, nil
	}
	bad := errs.Invalid("page_token", "INVALID_PAGE_TOKEN", "page_token was not returned by this query")
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return p, bad
	}
	var t pageToken
	if json.Unmarshal(b, &t) != nil || t.OrderID == "" || t.State != filterName(state) {
		return p, bad
	}
	p.After = &Position{CreatedAt: time.UnixMicro(t.CreatedAt).UTC(), OrderID: t.OrderID}
	return p, nil
}

// Next trims orders (read with a limit of p.Size+1, newest first) to the page and returns the token
// of the next page, "" on the last one.
func (p Page) Next(orders []*domain.Order) ([]*domain.Order, string) {
	if len(orders) <= p.Size {
		return orders, ""
	}
	orders = orders[:p.Size]
	last := orders[p.Size-1]
	b, _ := json.Marshal(pageToken{CreatedAt: last.CreatedAt.UnixMicro(), OrderID: last.ID, State: filterName(p.State)})
	return orders, base64.RawURLEncoding.EncodeToString(b)
}
