package provider

import (
	"errors"
	"fmt"
)

// Class is what a refusal means for the message, the same for every provider: the dispatcher acts on
// the class, never on a provider's own codes.
type Class int

// The classes. An error that carries none (a timeout, a transport error, the webhook's non-2xx) is
// Transient.
const (
	// Transient: the gateway could not take the message now (its system error, API throttling, a
	// timeout). Retry with the usual backoff.
	Transient Class = iota
	// PerNumberLimit: the gateway's own flow control for this phone number (so many texts per
	// minute, hour or day). Retry later, not sooner than domain.PerNumberLimitWait; it is no
	// reason to fail over to another provider.
	PerNumberLimit
	// Account: the account or its configuration refuses every message (balance, permissions,
	// credentials, a sign name or template not approved, the account's own quota). Retry (and, once
	// there is more than one provider, fail over); an operator must act.
	Account
	// Permanent: this message can never go (an invalid or blocked number). The message FAILS at once,
	// so its code is voided at once.
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

// Error is a gateway's refusal of one message, classified. It names the gateway's code and its
// message (cut, digit runs masked: see gatewayError), never the phone, the text, the parameters or a
// credential.
type Error struct {
	Provider string
	Class    Class
	// Code is the gateway's error code (isv.MOBILE_NUMBER_ILLEGAL, LimitExceeded.PhoneNumberDailyLimit)
	// or "HTTP <status>" when it gave none.
	Code string
	// Detail is the gateway's message, made fit to log.
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s: gateway refused the message: %s (%s)", e.Provider, e.Code, e.Class)
	}
	return fmt.Sprintf("%s: gateway refused the message: %s (%s): %s", e.Provider, e.Code, e.Class, e.Detail)
}

// refusal builds an *Error, the gateway's message made fit to log.
func refusal(provider string, class Class, code, message string) *Error {
	return &Error{Provider: provider, Class: class, Code: gatewayError(code), Detail: gatewayError(message)}
}

// ClassOf is the class of a Send error: that of the *Error it wraps, else Transient.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Transient
}
