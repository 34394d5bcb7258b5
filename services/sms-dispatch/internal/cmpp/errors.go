package cmpp

import (
	"errors"
	"fmt"
)

// Class is what a refusal means for the message; the provider adapter maps it onto the
// provider's classes one to one (this package cannot import the provider package: that one
// imports this one).
type Class int

// The classes, in the provider package's order.
const (
	// Transient: retry (flow control, a lost link, no answer in time).
	Transient Class = iota
	// PerNumberLimit: the gateway's limit for this phone number; retry later, no failover.
	PerNumberLimit
	// Account: the account or its configuration (credentials, service code, fee code, Src_Id)
	// refuses every message; an operator must act.
	Account
	// Permanent: this message can never go (bad number, a PDU the gateway cannot take).
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

// Error is a refusal or a failure of one operation, classified. It names the gateway's code and
// what it means, never the text; a phone in Detail is masked.
type Error struct {
	Class Class
	// Op is "connect" or "submit".
	Op string
	// Code is CONNECT_RESP's Status or SUBMIT_RESP's Result; 0 when the gateway gave none (a
	// timeout, a lost link).
	Code   uint32
	Detail string
}

func (e *Error) Error() string {
	if e.Code == 0 {
		return fmt.Sprintf("cmpp %s: %s (%s)", e.Op, e.Detail, e.Class)
	}
	return fmt.Sprintf("cmpp %s: gateway answered %d: %s (%s)", e.Op, e.Code, e.Detail, e.Class)
}

// ClassOf is the class of err: that of the *Error it wraps, else Transient.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Transient
}

// connectStatus is CONNECT_RESP's Status per the spec.
var connectStatus = map[uint32]string{
	1: "message structure error",
	2: "illegal source address (unknown SP account)",
	3: "authentication failed (wrong shared secret, or the clock is off)",
	4: "version too high",
}

// connectError is the error for a CONNECT_RESP Status other than 0: the account or its
// configuration, except an unknown (gateway's own) status, which may pass.
func connectError(status uint32) *Error {
	if d, ok := connectStatus[status]; ok {
		return &Error{Class: Account, Op: "connect", Code: status, Detail: d}
	}
	return &Error{Class: Transient, Op: "connect", Code: status, Detail: "gateway's own status (other error)"}
}

type resultInfo struct {
	class  Class
	detail string
}

// submitResults are SUBMIT_RESP's Result codes per the spec (CMPP 3.0, 5.2.3.5); codes above 13
// are each gateway's own and Transient unless Config.ResultClasses says otherwise.
var submitResults = map[uint32]resultInfo{
	1:  {Permanent, "message structure error"},
	2:  {Permanent, "command word error"},
	3:  {Transient, "duplicate sequence number"},
	4:  {Permanent, "message length error"},
	5:  {Account, "fee code error"},
	6:  {Permanent, "message exceeds the maximum length"},
	7:  {Account, "service code (Service_Id) error"},
	8:  {Transient, "flow control"},
	9:  {Permanent, "this gateway does not serve the fee terminal"},
	10: {Account, "Src_Id error"},
	11: {Account, "Msg_src error"},
	12: {Account, "Fee_terminal_Id error"},
	13: {Permanent, "Dest_terminal_Id error"},
}

// ResultError is the classified error for SUBMIT_RESP's Result (nil for 0); overrides, when not
// nil, decide first (a gateway's own code for a per-number limit, say).
func ResultError(result uint32, overrides map[uint32]Class) error {
	if result == 0 {
		return nil
	}
	info, known := submitResults[result]
	if !known {
		info = resultInfo{Transient, "gateway's own result code"}
	}
	if c, ok := overrides[result]; ok {
		info.class = c
	}
	return &Error{Class: info.class, Op: "submit", Code: result, Detail: info.detail}
}
