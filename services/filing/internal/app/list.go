package app

import (
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/icpverify/icpverify/pkg/errs"
	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/services/filing/internal/convert"
	"github.com/icpverify/icpverify/services/filing/internal/domain"
)

// A ListOrders page is bounded twice (security review M5: a page of 200 orders of 4 MiB each was
// ~800 MB in a pod limited to 256 MiB).
//
// By count: at most maxOrdersPerPage orders, below pagetoken.MaxSize, because an order can be big.
// The domain limits (domain/limits.go) bound an order's content: 50 websites with a 253-character
// domain (up to ~0.7 KB as Unicode), a 100-character name and a 100-character person each, a
// 128-character subject, 20 verifiers whose roles repeat the domains, 4 bytes a character at worst.
// TestWorstCaseOrderSize builds that order: about 125 KB rendered (50 APPs with three of the
// longest packages each are smaller, ~104 KB: TestWorstCaseAppOrderSize), with a cancel reason and
// a review comment in its history (each submission and return adds ~0.1 KB more). The engine reads
// maxOrdersPerPage+1 orders: ~6.3 MB at worst in their domain form (the stored and decoded forms are
// of the same size), of which at most maxPageBytes is rendered (below), so several concurrent
// worst-case lists stay well under the 256 MiB filing pods (deploy/k8s).
//
// By bytes: the page ends before the order that takes its rendered size past maxPageBytes (the
// first order is always included), so an answer stays well under a client's default 4 MiB receive
// limit and the page in memory is small, however long an order's history has grown.
const (
	maxOrdersPerPage = 50
	maxPageBytes     = 1 << 20
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
	p := page{State: state, Size: min(size, maxOrdersPerPage)}
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

// render trims orders (read with a limit of p.Size+1, newest first) to the page, renders them and
// returns them with the token of the next page, "" on the last one. The page also ends before an
// order that would take it past maxPageBytes.
func (p page) render(orders []domain.Order) ([]*filingv1.Order, string) {
	more := len(orders) > p.Size
	if more {
		orders = orders[:p.Size]
	}
	out := make([]*filingv1.Order, 0, len(orders))
	bytes := 0
	for _, o := range orders {
		r := convert.Order(o)
		if bytes += proto.Size(r); bytes > maxPageBytes && len(out) > 0 {
			more = true
			break
		}
		out = append(out, r)
	}
	if !more {
		return out, ""
	}
	last := orders[len(out)-1]
	return out, pagetoken.Encode(tokenPosition{CreatedAt: last.CreatedAt.UnixMicro(), OrderID: last.ID}, filterName(p.State))
}
