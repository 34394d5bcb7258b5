// Package receipts is sms-dispatch's receipt endpoint: the carriers' delivery reports as each
// provider pushes them (aliyun SmsReport, tencent's status callback, the webhook gateway's own form),
// parsed and handed to the store's one use case, RecordReceipts (a push's receipts in one batch). Neither aliyun nor tencent signs its
// pushes (their documentation of SmsReport and of the status callback defines no signature or
// header: the console takes only a URL), so the secret is in the URL: the path ends with the
// configured token, compared in constant time; a request with another token is 403. The webhook
// gateway is ours to configure, so it sends the token as "Authorization: Bearer <token>" (401
// without it). Bodies are bounded (413 beyond MaxBody); a body that does not parse is 400, and then
// nothing of it is recorded; a receipt naming no message we know is answered OK and counted (the
// provider would only push it again). Nothing here logs a phone, a text or a code.
package receipts

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/dispatcher"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// Recorder is the store's use case (store.Store and memstore.Store implement it).
type Recorder interface {
	RecordReceipts(ctx context.Context, rs []domain.Receipt) ([]domain.ReceiptOutcome, error)
}

// MaxBody bounds a push: aliyun and tencent merge reports, a few hundred bytes each.
const MaxBody = 1 << 20

// The paths; aliyun's and tencent's end with "/<token>".
const (
	AliyunPath  = "/receipts/aliyun/"
	TencentPath = "/receipts/tencent/"
	WebhookPath = "/receipts/webhook"
)

// Handler serves the receipt endpoint.
type Handler struct {
	Store   Recorder
	Token   string // the configured secret; never logged
	Clock   clock.Clock
	Log     *zap.Logger
	Metrics *dispatcher.Metrics
}

// ServeHTTP routes a push to its format.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, AliyunPath):
		h.serve(w, r, "aliyun", h.pathAuth(r, AliyunPath), parseAliyun, `{"code":0,"msg":"成功"}`)
	case strings.HasPrefix(r.URL.Path, TencentPath):
		h.serve(w, r, "tencent", h.pathAuth(r, TencentPath), parseTencent, `{"result":0,"errmsg":"OK"}`)
	case r.URL.Path == WebhookPath:
		h.serve(w, r, "webhook", h.bearerAuth(r), parseWebhook, `{"ok":true}`)
	default:
		http.NotFound(w, r)
	}
}

func (h *Handler) pathAuth(r *http.Request, prefix string) int {
	if !h.equal(strings.TrimPrefix(r.URL.Path, prefix)) {
		return http.StatusForbidden
	}
	return 0
}

func (h *Handler) bearerAuth(r *http.Request) int {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !h.equal(token) {
		return http.StatusUnauthorized
	}
	return 0
}

func (h *Handler) equal(token string) bool {
	return h.Token != "" && subtle.ConstantTimeCompare([]byte(token), []byte(h.Token)) == 1
}

// parser reads one push into receipts (Provider and At left to serve); an error is a 400.
type parser func(body []byte) ([]domain.Receipt, error)

var errNoID = errors.New("a receipt names no message")

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, provider string, authStatus int, parse parser, ok string) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if authStatus != 0 {
		h.Metrics.Receipt(provider, dispatcher.ResultRejected)
		http.Error(w, http.StatusText(authStatus), authStatus)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		h.Metrics.Receipt(provider, dispatcher.ResultRejected)
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		http.Error(w, "cannot read the body", http.StatusBadRequest)
		return
	}
	receipts, err := parse(body)
	if err != nil {
		h.Metrics.Receipt(provider, dispatcher.ResultRejected)
		// The parser's error may quote the body (a phone): it is not echoed or logged.
		http.Error(w, "not a "+provider+" receipt push", http.StatusBadRequest)
		return
	}
	now := h.Clock.Now()
	for i := range receipts {
		receipts[i].Provider, receipts[i].At = provider, now
	}
	// One transaction for the whole push: all of it is recorded, or none.
	outs, err := h.Store.RecordReceipts(r.Context(), receipts)
	if err != nil {
		// 5xx: the provider pushes again later, and a repeat changes nothing twice.
		h.Log.Warn("receipts not recorded", zap.String("provider", provider), zap.Int("receipts", len(receipts)), zap.Error(err))
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	for _, out := range outs {
		h.Metrics.Receipt(provider, string(out))
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, ok)
}

// checkIDs bounds the ids of a receipt; one without any is a bad push.
func checkIDs(r domain.Receipt) error {
	if r.ProviderID == "" && r.MessageID == "" {
		return errNoID
	}
	if len(r.ProviderID) > domain.MaxReceiptID || len(r.MessageID) > domain.MaxReceiptID {
		return errors.New("an id is too long")
	}
	return nil
}

// aliyunReport is one SmsReport entry (help.aliyun.com SmsReport: phone_number, send_time,
// report_time, success, err_code, err_msg, sms_size, biz_id, out_id).
type aliyunReport struct {
	PhoneNumber string `json:"phone_number"`
	SendTime    string `json:"send_time"`
	ReportTime  string `json:"report_time"`
	Success     *bool  `json:"success"`
	ErrCode     string `json:"err_code"`
	ErrMsg      string `json:"err_msg"`
	SmsSize     string `json:"sms_size"`
	BizID       string `json:"biz_id"`
	OutID       string `json:"out_id"`
}

func parseAliyun(body []byte) ([]domain.Receipt, error) {
	var reports []aliyunReport
	if err := json.Unmarshal(body, &reports); err != nil {
		return nil, err
	}
	out := make([]domain.Receipt, 0, len(reports))
	for _, rp := range reports {
		if rp.Success == nil {
			return nil, errors.New("a report without success")
		}
		r := domain.Receipt{ProviderID: rp.BizID, MessageID: rp.OutID, Delivered: *rp.Success, Code: rp.ErrCode}
		if err := checkIDs(r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// tencentReport is one status callback entry (Tencent Cloud SMS "SMS Sending Status Notification").
type tencentReport struct {
	UserReceiveTime string `json:"user_receive_time"`
	NationCode      string `json:"nationcode"`
	Mobile          string `json:"mobile"`
	ReportStatus    string `json:"report_status"`
	ErrMsg          string `json:"errmsg"`
	Description     string `json:"description"`
	SID             string `json:"sid"`
}

func parseTencent(body []byte) ([]domain.Receipt, error) {
	var reports []tencentReport
	if err := json.Unmarshal(body, &reports); err != nil {
		return nil, err
	}
	out := make([]domain.Receipt, 0, len(reports))
	for _, rp := range reports {
		if rp.ReportStatus != "SUCCESS" && rp.ReportStatus != "FAIL" {
			return nil, errors.New("report_status is neither SUCCESS nor FAIL")
		}
		r := domain.Receipt{ProviderID: rp.SID, Delivered: rp.ReportStatus == "SUCCESS", Code: rp.ErrMsg}
		if rp.SID == "" {
			return nil, errNoID
		}
		if err := checkIDs(r); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

// WebhookReceipt is the webhook gateway's receipt: one message, by our id and/or its own.
type WebhookReceipt struct {
	MessageID  string    `json:"message_id"`
	ProviderID string    `json:"provider_id,omitempty"`
	Status     string    `json:"status"` // delivered | undelivered
	Code       string    `json:"code,omitempty"`
	Time       time.Time `json:"time,omitzero"`
}

func parseWebhook(body []byte) ([]domain.Receipt, error) {
	var rp WebhookReceipt
	if err := json.Unmarshal(body, &rp); err != nil {
		return nil, err
	}
	if rp.Status != "delivered" && rp.Status != "undelivered" {
		return nil, errors.New("status is neither delivered nor undelivered")
	}
	r := domain.Receipt{ProviderID: rp.ProviderID, MessageID: rp.MessageID, Delivered: rp.Status == "delivered", Code: rp.Code}
	if err := checkIDs(r); err != nil {
		return nil, err
	}
	return []domain.Receipt{r}, nil
}
