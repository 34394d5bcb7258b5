package grpcapi

import (
	"time"

	"github.com/icpverify/icpverify/pkg/pagetoken"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// tokenPosition is a ListMessages page token's position (pkg/pagetoken); the token also carries the
// order_id filter, so a token cannot resume a listing of another order. The JSON names are the wire
// form of tokens already issued.
type tokenPosition struct {
	At time.Time `json:"a"`
	ID string    `json:"i"`
}

// encodePage is the token that resumes a listing filtered by orderID after last.
func encodePage(last domain.Message, orderID string) string {
	return pagetoken.Encode(tokenPosition{At: last.CreatedAt, ID: last.ID}, orderID)
}

// decodePage reads a token encodePage issued for the same orderID filter; "" gives nil (the first
// page).
func decodePage(token, orderID string) (*domain.Position, error) {
	t, err := pagetoken.Decode[tokenPosition](token, orderID)
	if err != nil || t == nil {
		return nil, err
	}
	return &domain.Position{CreatedAt: t.At.UTC(), ID: t.ID}, nil
}
