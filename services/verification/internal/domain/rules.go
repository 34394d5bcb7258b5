package domain

import (
	"fmt"
	"time"

	"github.com/icpverify/icpverify/pkg/errs"
	"github.com/icpverify/icpverify/pkg/iddoc"
	"github.com/icpverify/icpverify/pkg/orderid"
	"github.com/icpverify/icpverify/pkg/phone"
)

// SessionState is the state of one submission's verification; the values are stored as text.
type SessionState string

// The session states. Only OPEN moves; every other state is final.
const (
	SessionOpen      SessionState = "OPEN"
	SessionPassed    SessionState = "PASSED"
	SessionFailed    SessionState = "FAILED"
	SessionTimedOut  SessionState = "TIMED_OUT"
	SessionCancelled SessionState = "CANCELLED"
)

// ChallengeState is the state of one verifier; PASSED and LOCKED are final.
type ChallengeState string

// The challenge states.
const (
	ChallengePending ChallengeState = "PENDING"
	ChallengePassed  ChallengeState = "PASSED"
	ChallengeLocked  ChallengeState = "LOCKED"
)

// Error reasons of this service.
const (
	ReasonNotMatched         = "VERIFICATION_NOT_MATCHED"
	ReasonSessionNotFound    = "SESSION_NOT_FOUND"
	ReasonVerifierNotFound   = "VERIFIER_NOT_FOUND"
	ReasonDeadlineNotReached = "DEADLINE_NOT_REACHED"
	ReasonResendLimit        = "RESEND_LIMIT_REACHED"
	ReasonResendTooSoon      = "RESEND_TOO_SOON"
	ReasonVerifierNotPending = "VERIFIER_NOT_PENDING"
	ReasonStaleSubmission    = "STALE_SUBMISSION"
	ReasonInvalidCode        = "INVALID_CODE"
)

// NotMatchedMessage is the one answer to every failed check, whatever was wrong.
const NotMatchedMessage = "该条验证库里找不到记录或已完成验证 (no matching verification record, or it is already complete)"

// ErrNotMatched returns the uniform answer to a failed check. It is a fresh value each time so no
// caller can mutate a shared one.
func ErrNotMatched() error {
	return errs.NotFound(ReasonNotMatched, NotMatchedMessage)
}

// The answers to a correct check.
const (
	MessageWaitingZH = "您的短信核验完成，请等待其他核验人进行短信核验"
	MessageWaitingEN = "Your verification is complete; other verifiers are still pending."
	MessageAllZH     = "您的短信核验已全部完成，该请求将提交管局审核"
	MessageAllEN     = "All verifiers are done; the order goes to the administration's review."
)

// DefaultLocale is the SMS locale when the request names none.
const DefaultLocale = "zh-CN"

// Limits are the configurable rules of one deployment.
type Limits struct {
	MaxFailedAttempts int
	MaxResends        int
	ResendInterval    time.Duration
	// PhoneFailureBudget failed checks per phone in PhoneFailureWindow, across all orders and
	// tenants, spend the phone's budget (budget.go).
	PhoneFailureBudget int
	PhoneFailureWindow time.Duration
}

// DefaultLimits are the rule book's defaults: 5 failures, 2 resends, 60 s apart; 10 failures per
// phone in 24 h.
var DefaultLimits = Limits{MaxFailedAttempts: 5, MaxResends: 2, ResendInterval: 60 * time.Second,
	PhoneFailureBudget: 10, PhoneFailureWindow: 24 * time.Hour}

// Validate checks the limits a flag set.
func (l Limits) Validate() error {
	if l.MaxFailedAttempts < 1 {
		return fmt.Errorf("--max-failed-attempts must be at least 1")
	}
	if l.MaxResends < 0 {
		return fmt.Errorf("--max-resends must not be negative")
	}
	if l.ResendInterval < 0 {
		return fmt.Errorf("--resend-interval must not be negative")
	}
	if l.PhoneFailureBudget < 1 {
		return fmt.Errorf("--phone-failure-budget must be at least 1")
	}
	if l.PhoneFailureWindow < time.Minute {
		return fmt.Errorf("--phone-failure-window must be at least 1m")
	}
	return nil
}

// VerifyInput is a normalised Verify request.
type VerifyInput struct {
	Phone string // E.164
	Code  string // 6 digits
	Tail  string // 6 upper-case characters
	// Scope is whose challenges the check may compare with (the caller's tenant's).
	Scope Scope
	// Link is the hash of the link token the check came through (nil: none): only that challenge
	// may pass, and failures count on the phone's challenges exactly as without it.
	Link []byte
}

// NormalizeVerify checks the shape of a Verify request; shape errors name the field. Everything
// beyond the shape is answered uniformly by the check; linkToken ("": none) is a link's token, and
// with one the phone may be empty. countries is the list of allowed country
// calling codes (see NormalizePhone).
func NormalizeVerify(countries phone.Countries, rawPhone, code, tail, linkToken string) (VerifyInput, error) {
	var link []byte
	if linkToken != "" {
		if err := CheckLinkToken("link_token", linkToken); err != nil {
			return VerifyInput{}, err
		}
		link = LinkHash(linkToken)
	}
	var p string
	if rawPhone != "" || link == nil { // through a link the phone may be left out: it is the link's
		var err error
		if p, err = NormalizePhone(countries, "phone", rawPhone); err != nil {
			return VerifyInput{}, err
		}
	}
	if !ValidCodeShape(code) {
		return VerifyInput{}, errs.Invalid("code", ReasonInvalidCode, "the code has exactly %d digits", CodeLength)
	}
	t, err := iddoc.NormalizeTail("id_tail", tail)
	if err != nil {
		return VerifyInput{}, err
	}
	return VerifyInput{Phone: p, Code: code, Tail: t, Link: link}, nil
}

// Checkable reports whether a challenge can be checked at now: its session is open, it is pending
// and the deadline has not come (a check at exactly deadline_at fails).
func Checkable(now time.Time, s SessionState, c ChallengeState, deadlineAt time.Time) bool {
	return s == SessionOpen && c == ChallengePending && now.Before(deadlineAt)
}

// Candidate is one challenge for the checked phone, with the result of the hash comparisons.
type Candidate struct {
	SessionState   SessionState
	ChallengeState ChallengeState
	DeadlineAt     time.Time
	FailedAttempts int
	CodeMatches    bool
	TailMatches    bool
}

// Failure is the new failure count of one candidate; Lock means it reached the limit.
type Failure struct {
	Index          int
	FailedAttempts int
	Lock           bool
}

// VerifyDecision says what a check does: pass one candidate, or count a failure on each checkable one.
type VerifyDecision struct {
	Pass     int // index of the passing candidate, -1 if none
	Failures []Failure
}

// DecideVerify picks the first checkable candidate whose code and ID tail both match. With no such
// candidate, every checkable candidate counts one more consecutive failure; reaching maxFailed locks it.
func DecideVerify(now time.Time, cands []Candidate, maxFailed int) VerifyDecision {
	for i, c := range cands {
		if Checkable(now, c.SessionState, c.ChallengeState, c.DeadlineAt) && c.CodeMatches && c.TailMatches {
			return VerifyDecision{Pass: i}
		}
	}
	d := VerifyDecision{Pass: -1}
	for i, c := range cands {
		if !Checkable(now, c.SessionState, c.ChallengeState, c.DeadlineAt) {
			continue
		}
		n := c.FailedAttempts + 1
		d.Failures = append(d.Failures, Failure{Index: i, FailedAttempts: n, Lock: n >= maxFailed})
	}
	return d
}

// AllPassed reports whether every challenge of a session passed.
func AllPassed(states []ChallengeState) bool {
	if len(states) == 0 {
		return false
	}
	for _, s := range states {
		if s != ChallengePassed {
			return false
		}
	}
	return true
}

// ResendState is what the resend rules look at.
type ResendState struct {
	SessionState   SessionState
	ChallengeState ChallengeState
	DeadlineAt     time.Time
	ResendsUsed    int
	LastSentAt     time.Time
}

// CheckResend decides whether a new code may be sent at now. A verifier that is not pending (passed,
// locked, session closed or past the deadline) is refused first; then the count; then the interval,
// with the remaining wait as RetryAfter.
func CheckResend(now time.Time, s ResendState, l Limits) error {
	if !Checkable(now, s.SessionState, s.ChallengeState, s.DeadlineAt) {
		return errs.FailedPrecondition(ReasonVerifierNotPending, "this verifier cannot get a new code: it is done, locked, or the window is closed")
	}
	if s.ResendsUsed >= l.MaxResends {
		return errs.Exhausted(ReasonResendLimit, 0, "at most %d new codes per verifier in one window", l.MaxResends)
	}
	if next := s.LastSentAt.Add(l.ResendInterval); now.Before(next) {
		wait := next.Sub(now)
		return errs.Exhausted(ReasonResendTooSoon, wait, "a new code can be requested in %s", wait.Round(time.Second))
	}
	return nil
}

// ResendsLeft is how many resends remain after used, never negative.
func ResendsLeft(used int, l Limits) int { return max(l.MaxResends-used, 0) }

// CloseDecision is the answer of CloseIfIncomplete for one session state.
type CloseDecision struct {
	Closed bool // the session is TIMED_OUT (now or before)
	Return bool // this call closed it: the order must be returned
}

// DecideClose applies the deadline: before deadline_at nothing closes (DEADLINE_NOT_REACHED); an open
// session times out; a timed-out one answers closed again; any other final state stays as it is.
func DecideClose(now time.Time, state SessionState, deadlineAt time.Time) (CloseDecision, error) {
	if now.Before(deadlineAt) {
		return CloseDecision{}, errs.FailedPrecondition(ReasonDeadlineNotReached, "the verification window is still open")
	}
	switch state {
	case SessionOpen:
		return CloseDecision{Closed: true, Return: true}, nil
	case SessionTimedOut:
		return CloseDecision{Closed: true}, nil
	default:
		return CloseDecision{}, nil
	}
}

// VerifierSpec is one verifier of an OpenSession request, normalised.
type VerifierSpec struct {
	Phone string
	Roles []string
	Tails []string
}

// OpenSpec is a normalised OpenSession request.
type OpenSpec struct {
	OrderID    string
	Submission int32
	DeadlineAt time.Time
	Locale     string
	Verifiers  []VerifierSpec
	// Tenant is the order's tenant (empty: DevTenant).
	Tenant string
}

// NormalizeOpen checks the shape of an OpenSession request. A deadline in the past is not a shape
// error: DecideOpen records such a session as timed out, so the order is still returned.
func NormalizeOpen(in OpenSpec) (OpenSpec, error) {
	if err := orderid.CheckSubmission(in.OrderID, in.Submission); err != nil {
		return OpenSpec{}, err
	}
	if in.DeadlineAt.IsZero() {
		return OpenSpec{}, errs.Invalid("deadline_at", ReasonMissingDeadline, "deadline_at is required")
	}
	switch in.Locale {
	case "":
		in.Locale = DefaultLocale
	case "zh-CN", "en":
	default:
		return OpenSpec{}, errs.Invalid("locale", ReasonInvalidLocale, "locale must be zh-CN or en")
	}
	if len(in.Tenant) > MaxTenantLength {
		return OpenSpec{}, errs.Invalid("tenant", ReasonInvalidTenant, "a tenant is at most %d bytes", MaxTenantLength)
	}
	if len(in.Verifiers) == 0 {
		return OpenSpec{}, errs.Invalid("verifiers", ReasonNoVerifiers, "at least one verifier is required")
	}
	if len(in.Verifiers) > MaxSessionVerifiers {
		return OpenSpec{}, errs.Invalid("verifiers", ReasonTooManyVerifiers, "a session has at most %d verifiers", MaxSessionVerifiers)
	}
	out := in
	out.Verifiers = make([]VerifierSpec, len(in.Verifiers))
	seen := map[string]bool{}
	for i, v := range in.Verifiers {
		p, err := phone.Normalize(fmt.Sprintf("verifiers[%d].phone", i), v.Phone)
		if err != nil {
			return OpenSpec{}, err
		}
		if seen[p] {
			return OpenSpec{}, errs.Invalid(fmt.Sprintf("verifiers[%d].phone", i), ReasonDuplicateVerifierPhone,
				"each phone appears once: one phone verifies once for all its roles")
		}
		seen[p] = true
		if len(v.Tails) == 0 {
			return OpenSpec{}, errs.Invalid(fmt.Sprintf("verifiers[%d].id_tails", i), ReasonMissingIDTail,
				"at least one ID tail is required per verifier")
		}
		if len(v.Tails) > MaxVerifierTails {
			return OpenSpec{}, errs.Invalid(fmt.Sprintf("verifiers[%d].id_tails", i), ReasonTooManyTails,
				"a verifier has at most %d ID tails", MaxVerifierTails)
		}
		if len(v.Roles) > MaxVerifierRoles {
			return OpenSpec{}, errs.Invalid(fmt.Sprintf("verifiers[%d].roles", i), ReasonTooManyRoles,
				"a verifier has at most %d roles", MaxVerifierRoles)
		}
		for j, r := range v.Roles {
			if r == "" || len(r) > MaxRoleLength {
				return OpenSpec{}, errs.Invalid(fmt.Sprintf("verifiers[%d].roles[%d]", i, j), ReasonInvalidRole,
					"a role is 1 to %d characters", MaxRoleLength)
			}
		}
		tails := make([]string, 0, len(v.Tails))
		for j, t := range v.Tails {
			nt, err := iddoc.NormalizeTail(fmt.Sprintf("verifiers[%d].id_tails[%d]", i, j), t)
			if err != nil {
				return OpenSpec{}, err
			}
			tails = append(tails, nt)
		}
		out.Verifiers[i] = VerifierSpec{Phone: p, Roles: append([]string(nil), v.Roles...), Tails: tails}
	}
	return out, nil
}

// VerifierID is the short, stable id of the i-th (0-based) verifier of a session: v1, v2, ...
func VerifierID(i int) string { return fmt.Sprintf("v%d", i+1) }

// MessageID is the SMS message id of one generation of a verifier's code; deterministic so a
// redelivered outbox row never sends twice.
func MessageID(sessionID, verifierID string, generation int) string {
	return fmt.Sprintf("vc-%s-%s-%d", sessionID, verifierID, generation)
}

// MarkVerifiedRequestID is the request id of filing.MarkVerified for a submission. The request ids of
// the calls this service owes others are deterministic from the business key, so redeliveries dedupe.
func MarkVerifiedRequestID(orderID string, sub int32) string {
	return fmt.Sprintf("verification:mark-verified:%s:%d", orderID, sub)
}

// CancelDeadlineRequestID is the request id of deadline.CancelDeadline for a submission.
func CancelDeadlineRequestID(orderID string, sub int32) string {
	return fmt.Sprintf("verification:cancel-deadline:%s:%d", orderID, sub)
}

// ScheduleNoonRequestID is the request id of deadline.ScheduleNoonResend for a submission.
func ScheduleNoonRequestID(orderID string, sub int32) string {
	return fmt.Sprintf("verification:schedule-noon:%s:%d", orderID, sub)
}

// ReturnRequestID is the request id of filing.ReturnOrder for a submission; one id for both reasons,
// so an order is returned at most once per submission.
func ReturnRequestID(orderID string, sub int32) string {
	return fmt.Sprintf("verification:return:%s:%d", orderID, sub)
}
