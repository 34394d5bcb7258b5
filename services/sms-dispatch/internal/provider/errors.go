package provider

import (
	"errors"
	"fmt"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/sendclass"
)

// Class is what a refusal means for the message (sendclass.Class: shared with the CMPP codec).
type Class = sendclass.Class

// The classes (see sendclass).
const (
	Transient      = sendclass.Transient
	PerNumberLimit = sendclass.PerNumberLimit
	Account        = sendclass.Account
	Permanent      = sendclass.Permanent
)

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
