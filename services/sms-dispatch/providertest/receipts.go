package providertest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// AliyunReport is one SmsReport entry as Alibaba Cloud pushes it.
type AliyunReport struct {
	PhoneNumber string `json:"phone_number"`
	SendTime    string `json:"send_time"`
	ReportTime  string `json:"report_time"`
	Success     bool   `json:"success"`
	ErrCode     string `json:"err_code"`
	ErrMsg      string `json:"err_msg"`
	SmsSize     string `json:"sms_size"`
	BizID       string `json:"biz_id"`
	OutID       string `json:"out_id"`
}

// AliyunReport is the SmsReport entry of an accepted message: DELIVERED, or errCode (e.g. MK:0001) when
// !delivered.
func (a Accepted) AliyunReport(delivered bool, errCode string) AliyunReport {
	now := time.Now().In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05")
	r := AliyunReport{PhoneNumber: strings.TrimPrefix(a.Phone, "+86"), SendTime: now, ReportTime: now, Success: delivered,
		ErrCode: "DELIVERED", ErrMsg: "用户接收成功", SmsSize: "1", BizID: a.ProviderID, OutID: a.MessageID}
	if !delivered {
		r.ErrCode, r.ErrMsg = errCode, "用户接收失败"
	}
	return r
}

// PushAliyun posts reports to url as SmsReport does (one JSON array) and checks the documented answer.
func PushAliyun(url string, reports ...AliyunReport) error {
	var ans struct {
		Code *int `json:"code"`
	}
	if err := push(url, reports, &ans); err != nil {
		return err
	}
	if ans.Code == nil || *ans.Code != 0 {
		return fmt.Errorf("SmsReport answer without code 0")
	}
	return nil
}

// TencentReport is one status callback entry as Tencent Cloud pushes it.
type TencentReport struct {
	UserReceiveTime string `json:"user_receive_time"`
	NationCode      string `json:"nationcode"`
	Mobile          string `json:"mobile"`
	ReportStatus    string `json:"report_status"`
	ErrMsg          string `json:"errmsg"`
	Description     string `json:"description"`
	SID             string `json:"sid"`
}

// TencentReport is the status callback entry of an accepted message: SUCCESS (DELIVRD) or FAIL with errmsg.
func (a Accepted) TencentReport(delivered bool, errmsg string) TencentReport {
	r := TencentReport{UserReceiveTime: time.Now().In(time.FixedZone("CST", 8*3600)).Format("2006-01-02 15:04:05"),
		NationCode: "86", Mobile: strings.TrimPrefix(a.Phone, "+86"), ReportStatus: "SUCCESS", ErrMsg: "DELIVRD",
		Description: "用户短信送达成功", SID: a.ProviderID}
	if !delivered {
		r.ReportStatus, r.ErrMsg, r.Description = "FAIL", errmsg, "用户短信接收失败"
	}
	return r
}

// PushTencent posts reports to url as the status callback does and checks the documented answer.
func PushTencent(url string, reports ...TencentReport) error {
	var ans struct {
		Result *int `json:"result"`
	}
	if err := push(url, reports, &ans); err != nil {
		return err
	}
	if ans.Result == nil || *ans.Result != 0 {
		return fmt.Errorf("status callback answer without result 0")
	}
	return nil
}

// PushReceipts pushes to url the aliyun fake's report of every message it accepted.
func (f *Aliyun) PushReceipts(url string, delivered bool, errCode string) error {
	var reports []AliyunReport
	for _, a := range f.Accepted() {
		reports = append(reports, a.AliyunReport(delivered, errCode))
	}
	return PushAliyun(url, reports...)
}

// PushReceipts pushes to url the tencent fake's report of every message it accepted.
func (f *Tencent) PushReceipts(url string, delivered bool, errmsg string) error {
	var reports []TencentReport
	for _, a := range f.Accepted() {
		reports = append(reports, a.TencentReport(delivered, errmsg))
	}
	return PushTencent(url, reports...)
}

func push(url string, body, ans any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	resp, err := http.Post(url, "application/json", bytes.NewReader(b)) //nolint:noctx // a test helper
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("receipt push answered HTTP %d", resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(ans)
}
