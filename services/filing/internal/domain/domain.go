// Package domain holds the filing rules without I/O: the order content and its validation, who must
// verify by SMS for each filing type, the phone-change rule against the subject's approved record,
// what an approval does to that record, and the order state machine. Time is always a parameter.
package domain

import (
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/iddoc"
)

// FilingType is the kind of filing; the values mirror icp.filing.v1.FilingType.
type FilingType int32

// The filing types.
const (
	FirstFiling       FilingType = iota + 1 // 首次备案
	AddWebsite                              // 新增网站
	AddAccess                               // 新增接入
	ChangeFiling                            // 变更备案
	ChangeAccess                            // 变更接入
	CancelAccess                            // 取消接入
	DeregisterSubject                       // 注销主体
	DeregisterWebsite                       // 注销网站
)

var filingTypeNames = map[FilingType]string{
	FirstFiling: "FIRST_FILING", AddWebsite: "ADD_WEBSITE", AddAccess: "ADD_ACCESS", ChangeFiling: "CHANGE_FILING",
	ChangeAccess: "CHANGE_ACCESS", CancelAccess: "CANCEL_ACCESS", DeregisterSubject: "DEREGISTER_SUBJECT",
	DeregisterWebsite: "DEREGISTER_WEBSITE",
}

// Valid tells a known filing type.
func (t FilingType) Valid() bool { _, ok := filingTypeNames[t]; return ok }

func (t FilingType) String() string {
	if n, ok := filingTypeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("FILING_TYPE(%d)", int32(t))
}

// ReturnReason says why verification returned an order; the values mirror icp.filing.v1.ReturnReason.
type ReturnReason int32

// The return reasons.
const (
	ReturnNone                  ReturnReason = 0
	ReturnVerificationTimeout   ReturnReason = 1
	ReturnTooManyFailedAttempts ReturnReason = 2
)

func (r ReturnReason) String() string {
	switch r {
	case ReturnVerificationTimeout:
		return "VERIFICATION_TIMEOUT"
	case ReturnTooManyFailedAttempts:
		return "TOO_MANY_FAILED_ATTEMPTS"
	}
	return "UNSPECIFIED"
}

// Person is a responsible person. After Rules.Normalize, Phone and EmergencyPhone are E.164,
// IDNumber is in iddoc.Clean form and HKMacaoIDNumber in iddoc.CleanHKMacaoID form.
type Person struct {
	Name           string     `json:"name"`
	IDType         iddoc.Type `json:"id_type"`
	IDNumber       string     `json:"id_number"`
	Phone          string     `json:"phone"`
	EmergencyPhone string     `json:"emergency_phone,omitempty"`
	// HKMacaoIDNumber: a HK/Macau permit holder's Hong Kong or Macau identity card (the permit's
	// back), whose tail the verifier types in a province of Rules.BackIDTailProvinces.
	HKMacaoIDNumber string `json:"hk_macao_id_number,omitempty"`
}

// Spec is the content of an order as the portal entered it.
type Spec struct {
	FilingType  FilingType `json:"filing_type"`
	SubjectID   string     `json:"subject_id,omitempty"`
	SubjectName string     `json:"subject_name,omitempty"`
	SubjectType int32      `json:"subject_type,omitempty"` // mirrors icp.filing.v1.SubjectType
	Principal   *Person    `json:"principal,omitempty"`
	// Websites is the contract's deprecated list: Normalize (and reading a stored spec) folds it into
	// Services as services of kind WEBSITE, in front, so it is empty in every normalized spec.
	Websites       []Website `json:"websites,omitempty"`
	SubjectChanged bool      `json:"subject_changed,omitempty"`
	Services       []Service `json:"services,omitempty"`
	// Province is the GB/T 2260 code of the administration (管局) reviewing the order ("": not named).
	Province string `json:"province,omitempty"`
}

// Verifier is one distinct phone that must pass SMS verification, with every role it verifies for
// and the ID tails of the persons using it (any of them may be typed).
type Verifier struct {
	Phone   string   // E.164
	Roles   []string // "principal", and the Key of each service whose person it is
	IDTails []string // iddoc.Tail of each person with this phone, deduplicated
}

// StateChange is one recorded transition of an order.
type StateChange struct {
	From, To State
	At       time.Time
	Actor    string
	Reason   string
}

// Order is a filing order as stored.
type Order struct {
	ID           string
	Spec         Spec
	State        State
	Submission   int32
	DeadlineAt   time.Time // zero when no verification window is open or was opened
	ReturnReason ReturnReason
	Verifiers    []Verifier // of the current submission
	History      []StateChange
	CreatedAt    time.Time
	UpdatedAt    time.Time
	Tenant       string // the tenant whose portal created the order (see Actor)
}

// The actors recorded in the history (a portal's entries name its tenant: Actor.HistoryName).
const (
	ActorPortal         = "portal"
	ActorVerification   = "verification"
	ActorAdministration = "administration"
)

// ReasonOrderNotFound is the reason of an unknown order id.
const ReasonOrderNotFound = "ORDER_NOT_FOUND"

// OrderNotFound is the error of an order id no order has.
func OrderNotFound() error { return errs.NotFound(ReasonOrderNotFound, "no order with this order_id") }

// NewID returns an id with prefix: a UUIDv7 (time-ordered, so indexes stay compact) without dashes.
func NewID(prefix string) string {
	u, err := uuid.NewV7()
	if err != nil {
		u = uuid.New()
	}
	return prefix + strings.ReplaceAll(u.String(), "-", "")
}

// Move records a transition of o to state to at now.
func (o *Order) Move(now time.Time, to State, actor, reason string) {
	o.History = append(o.History, StateChange{From: o.State, To: to, At: now, Actor: actor, Reason: reason})
	o.State, o.UpdatedAt = to, now
}

// Open applies a planned submission to o at now: its verifiers and window, and the move it makes,
// recorded as actor's.
func (o *Order) Open(p Submission, now time.Time, actor string) {
	o.Submission, o.DeadlineAt, o.ReturnReason, o.Verifiers = p.Number, p.DeadlineAt, ReturnNone, p.Verifiers
	o.Move(now, p.To, actor, p.Reason)
}

// Position is a place in the listing order of orders: newest first by (CreatedAt, ID).
type Position struct {
	CreatedAt time.Time
	OrderID   string
}

// Before tells whether an order created at createdAt with id comes after p in the listing.
func (p Position) Before(createdAt time.Time, id string) bool {
	if c := createdAt.Compare(p.CreatedAt); c != 0 {
		return c < 0
	}
	return id < p.OrderID
}
