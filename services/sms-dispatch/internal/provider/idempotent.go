package provider

// Idempotent is a Provider whose gateway dedups by our message id, so that handing it one message
// twice sends one SMS: the webhook (its Idempotency-Key header, the batch items' message_id) and the
// console (nothing is sent). The dispatcher may retry such a provider with a message it already
// handed it; any other provider gets one message id at most once (failover goes to the next).
type Idempotent interface {
	IdempotentByID() bool
}

// IsIdempotent reports whether p dedups by our message id.
func IsIdempotent(p Provider) bool {
	i, ok := p.(Idempotent)
	return ok && i.IdempotentByID()
}

// IdempotentByID is true: the gateway dedups by the Idempotency-Key.
func (*Webhook) IdempotentByID() bool { return true }

// IdempotentByID is true: the console sends nothing.
func (*Console) IdempotentByID() bool { return true }
