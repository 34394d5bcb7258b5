package app

import (
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// page is one ListOrders query, decoded: orders newest first by (CreatedAt, ID), only those in
// State when it is set, strictly after the position of the page token.
type page struct {
	State domain.State
	Size  int
	After *domain.Position // nil: from the newest
}

// tokenPosition is the page token's position (pkg/pagetoken); the token also carries the state filter.
type tokenPosition struct {
	CreatedAt int64  `json:"c"` // unix microseconds
	OrderID   string `json:"o"`
}

func filterName(s domain.State) string {
	if s == domain.StateUnspecified {
		return ""
	}
	return s.String()
}

// parsePage checks a ListOrders query and clamps its page size.
func parsePage(state domain.State, pageSize int, token string) (page, error) {
	size, err := pagetoken.Size(int32(min(pageSize, pagetoken.MaxSize+1)))
	if err != nil {
		return page{}, err
	}
	p := page{State: state, Size: size}
	t, err := pagetoken.Decode[tokenPosition](token, filterName(state))
	if err != nil || t == nil {
		return p, err
	}
	if t.OrderID == "" {
		return p, errs.Invalid("page_token", pagetoken.ReasonInvalidPageToken, "page_token was not issued by this service for this query")
	}
	p.After = &domain.Position{CreatedAt: time.UnixMicro(t.CreatedAt).UTC(), OrderID: t.OrderID}
	return p, nil
}

// next trims orders (read with a limit of p.Size+1, newest first) to the page and returns the token
// of the next page, "" on the last one.
func (p page) next(orders []domain.Order) ([]domain.Order, string) {
	if len(orders) <= p.Size {
		return orders, ""
	}
	orders = orders[:p.Size]
	last := orders[p.Size-1]
	return orders, pagetoken.Encode(tokenPosition{CreatedAt: last.CreatedAt.UnixMicro(), OrderID: last.ID}, filterName(p.State))
}
