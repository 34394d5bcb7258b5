package grpcapi

import (
	"time"

	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/services/deadline/internal/domain"
)

// tokenPosition is a ListDeadlines page token's position (pkg/pagetoken); the token also carries the
// state filter, so a token cannot resume a listing of another state. The JSON names are the wire
// form of tokens already issued.
type tokenPosition struct {
	DueAt      time.Time `json:"d"`
	OrderID    string    `json:"o"`
	Submission int32     `json:"s"`
}

// encodePage is the token that resumes a listing filtered by state after last.
func encodePage(last domain.Deadline, state domain.State) string {
	return pagetoken.Encode(tokenPosition{DueAt: last.DueAt, OrderID: last.OrderID, Submission: last.Submission}, string(state))
}

// decodePage reads a token encodePage issued for a listing filtered by state; "" gives nil (the
// first page).
func decodePage(token string, state domain.State) (*domain.Position, error) {
	t, err := pagetoken.Decode[tokenPosition](token, string(state))
	if err != nil || t == nil {
		return nil, err
	}
	return &domain.Position{DueAt: t.DueAt.UTC(), OrderID: t.OrderID, Submission: t.Submission}, nil
}
