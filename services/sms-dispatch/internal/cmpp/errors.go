package cmpp

import (
	"errors"
	"fmt"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/sendclass"
)

// Class is what a refusal means for the message: sendclass.Class, the one the provider adapters use.
type Class = sendclass.Class

// The classes (see sendclass).
const (
	Transient      = sendclass.Transient
	PerNumberLimit = sendclass.PerNumberLimit
	Account        = sendclass.Account
	Permanent      = sendclass.Permanent
)

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
