// Package sendclass holds the one classification of a gateway's refusal that the dispatcher acts
// on. It is its own package so that the provider adapters and the CMPP codec (which the provider
// package imports) share it instead of each keeping a copy.
package sendclass

// Class is what a refusal means for the message, the same for every provider: the dispatcher acts on
// the class, never on a provider's own codes.
type Class int

// The classes. An error that carries none (a timeout, a transport error, the webhook's non-2xx) is
// Transient.
const (
	// Transient: the gateway could not take the message now (its system error, API throttling, flow
	// control, a lost link, a timeout). Retry with the usual backoff.
	Transient Class = iota
	// PerNumberLimit: the gateway's own flow control for this phone number (so many texts per
	// minute, hour or day). Retry later, not sooner than domain.PerNumberLimitWait; it is no
	// reason to fail over to another provider.
	PerNumberLimit
	// Account: the account or its configuration refuses every message (balance, permissions,
	// credentials, a sign name or template not approved, a CMPP service or fee code, the account's
	// own quota). Retry (and, once there is more than one provider, fail over); an operator must act.
	Account
	// Permanent: this message can never go (an invalid or blocked number, a PDU the gateway cannot
	// take). The message FAILS at once, so its code is voided at once.
	Permanent
)

func (c Class) String() string {
	switch c {
	case PerNumberLimit:
		return "per-number limit"
	case Account:
		return "account"
	case Permanent:
		return "permanent"
	}
	return "transient"
}
