package server

import (
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/cmpp"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/provider"
)

// cloudOptions are the flags of the two cloud providers, which render their own templates.
type cloudOptions struct {
	Timeout time.Duration

	AliyunKeyID, AliyunSecret, AliyunEndpoint    string
	AliyunSignName, AliyunTemplate, AliyunParams string

	TencentSecretID, TencentSecretKey, TencentEndpoint, TencentRegion string
	TencentAppID, TencentSignName, TencentTemplate, TencentParams     string
}

// registerCloud declares the aliyun and tencent flags; the values are read after Parse.
func registerCloud(f *config.Flags) func() cloudOptions {
	timeout := f.Duration("provider-timeout", 5*time.Second, "aliyun and tencent providers: timeout of one SendSms call")
	akID := f.String("aliyun-access-key-id", "", "aliyun provider: the AccessKey ID that signs SendSms")
	akSecret := f.String("aliyun-access-key-secret", "", "aliyun provider: the AccessKey secret (signs requests; never sent or logged)")
	akEndpoint := f.String("aliyun-endpoint", provider.DefaultAliyunEndpoint, "aliyun provider: the dysmsapi endpoint URL")
	akSign := f.String("aliyun-sign-name", "", "aliyun provider: the approved sign name (SignName)")
	akTemplate := f.String("aliyun-template-code", "", "aliyun provider: the approved template (TemplateCode, SMS_…)")
	akParams := f.String("aliyun-template-params", "code=code",
		"aliyun provider: the template's variables, var=value comma-separated, each value code, deadline or link (e.g. code=code,time=deadline,url=link)")
	tcID := f.String("tencent-secret-id", "", "tencent provider: the SecretId that signs SendSms")
	tcKey := f.String("tencent-secret-key", "", "tencent provider: the SecretKey (signs requests; never sent or logged)")
	tcEndpoint := f.String("tencent-endpoint", provider.DefaultTencentEndpoint, "tencent provider: the SMS API endpoint URL")
	tcRegion := f.String("tencent-region", provider.DefaultTencentRegion, "tencent provider: X-TC-Region")
	tcApp := f.String("tencent-sdk-app-id", "", "tencent provider: the SMS application (SmsSdkAppId, 1400…)")
	tcSign := f.String("tencent-sign-name", "", "tencent provider: the approved sign name (SignName)")
	tcTemplate := f.String("tencent-template-id", "", "tencent provider: the approved template (TemplateId)")
	tcParams := f.String("tencent-template-params", "code",
		"tencent provider: the template's {1}, {2}, … in order, comma-separated, each code, deadline or link (e.g. code,deadline,link)")
	return func() cloudOptions {
		return cloudOptions{Timeout: *timeout,
			AliyunKeyID: *akID, AliyunSecret: *akSecret, AliyunEndpoint: *akEndpoint, AliyunSignName: *akSign,
			AliyunTemplate: *akTemplate, AliyunParams: *akParams,
			TencentSecretID: *tcID, TencentSecretKey: *tcKey, TencentEndpoint: *tcEndpoint, TencentRegion: *tcRegion,
			TencentAppID: *tcApp, TencentSignName: *tcSign, TencentTemplate: *tcTemplate, TencentParams: *tcParams}
	}
}

// checkAliyun and checkTencent list what is missing or malformed for the chosen provider.
func (c cloudOptions) checkAliyun() []error {
	var problems []error
	if c.AliyunKeyID == "" || c.AliyunSecret == "" {
		problems = append(problems, errors.New("--aliyun-access-key-id and --aliyun-access-key-secret are required with --sms-provider=aliyun"))
	}
	if !httpURL(c.AliyunEndpoint) {
		problems = append(problems, errors.New("--aliyun-endpoint must be an http(s) URL"))
	}
	if c.AliyunSignName == "" || c.AliyunTemplate == "" {
		problems = append(problems, errors.New("--aliyun-sign-name and --aliyun-template-code are required with --sms-provider=aliyun"))
	}
	if _, err := provider.ParseNamedParams(c.AliyunParams); err != nil {
		problems = append(problems, errors.New("--aliyun-template-params: "+err.Error()))
	}
	return append(problems, c.checkTimeout()...)
}

func (c cloudOptions) checkTencent() []error {
	var problems []error
	if c.TencentSecretID == "" || c.TencentSecretKey == "" {
		problems = append(problems, errors.New("--tencent-secret-id and --tencent-secret-key are required with --sms-provider=tencent"))
	}
	if !httpURL(c.TencentEndpoint) {
		problems = append(problems, errors.New("--tencent-endpoint must be an http(s) URL"))
	}
	if c.TencentRegion == "" || c.TencentAppID == "" || c.TencentSignName == "" || c.TencentTemplate == "" {
		problems = append(problems, errors.New("--tencent-region, --tencent-sdk-app-id, --tencent-sign-name and --tencent-template-id "+
			"are required with --sms-provider=tencent"))
	}
	if _, err := provider.ParsePositionalParams(c.TencentParams); err != nil {
		problems = append(problems, errors.New("--tencent-template-params: "+err.Error()))
	}
	return append(problems, c.checkTimeout()...)
}

func (c cloudOptions) checkTimeout() []error {
	if c.Timeout <= 0 {
		return []error{errors.New("--provider-timeout must be positive")}
	}
	return nil
}

// client is the HTTP client of a cloud provider: one idle keep-alive connection per worker.
func (c cloudOptions) client(conns int) *http.Client {
	conns = max(conns, 2)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(tr.MaxIdleConns, conns)
	tr.MaxIdleConnsPerHost = conns
	return &http.Client{Timeout: c.Timeout, Transport: tr}
}

// aliyun and tencent build the providers of checked options.
func (c cloudOptions) aliyun(conns int) *provider.Aliyun {
	params, _ := provider.ParseNamedParams(c.AliyunParams)
	return &provider.Aliyun{Endpoint: c.AliyunEndpoint, AccessKeyID: c.AliyunKeyID, AccessKeySecret: c.AliyunSecret,
		SignName: c.AliyunSignName, TemplateCode: c.AliyunTemplate, Params: params, Client: c.client(conns)}
}

func (c cloudOptions) tencent(conns int) *provider.Tencent {
	params, _ := provider.ParsePositionalParams(c.TencentParams)
	return &provider.Tencent{Endpoint: c.TencentEndpoint, Region: c.TencentRegion, SecretID: c.TencentSecretID,
		SecretKey: c.TencentSecretKey, SdkAppID: c.TencentAppID, SignName: c.TencentSignName, TemplateID: c.TencentTemplate,
		Params: params, Client: c.client(conns)}
}

// openDefaults: a placeholder secret is known to anyone who read the example.
func (c cloudOptions) openDefaults(prov string) []config.OpenDefault {
	var open []config.OpenDefault
	if prov == "aliyun" && config.IsPlaceholder(c.AliyunSecret) {
		open = append(open, config.OpenDefault{Flag: "--aliyun-access-key-secret", What: "the aliyun AccessKey secret is a placeholder"})
	}
	if prov == "tencent" && config.IsPlaceholder(c.TencentSecretKey) {
		open = append(open, config.OpenDefault{Flag: "--tencent-secret-key", What: "the tencent SecretKey is a placeholder"})
	}
	return open
}

// cmppOptions are the flags of the cmpp provider (CMPP 3.0 to a carrier's gateway).
type cmppOptions struct {
	Addr, SourceAddr, Secret, SrcID, ServiceID string
	Conns, Window                              int
	SubmitTimeout, Heartbeat                   time.Duration
}

func registerCMPP(f *config.Flags) func() cmppOptions {
	addr := f.String("cmpp-addr", "", "cmpp provider: the carrier gateway's (ISMG's) host:port")
	src := f.String("cmpp-source-addr", "", "cmpp provider: the SP's enterprise code (Source_Addr, 6 characters)")
	secret := f.String("cmpp-secret", "", "cmpp provider: the shared secret of the login (never sent or logged)")
	srcID := f.String("cmpp-src-id", "", "cmpp provider: the service code the phone sees as the sender (Src_Id, 106…)")
	service := f.String("cmpp-service-id", "", "cmpp provider: the business code (Service_Id)")
	conns := f.Int("cmpp-conns", 1, "cmpp provider: links kept to the gateway")
	window := f.Int("cmpp-window", 16, "cmpp provider: submits a link may have unacknowledged")
	timeout := f.Duration("cmpp-submit-timeout", 10*time.Second,
		"cmpp provider: bound of each wait of a submit (a link, a window slot, a SUBMIT_RESP); a link silent that long is dialled again")
	heartbeat := f.Duration("cmpp-heartbeat", 30*time.Second, "cmpp provider: silence on a link before an ACTIVE_TEST")
	return func() cmppOptions {
		return cmppOptions{Addr: *addr, SourceAddr: *src, Secret: *secret, SrcID: *srcID, ServiceID: *service,
			Conns: *conns, Window: *window, SubmitTimeout: *timeout, Heartbeat: *heartbeat}
	}
}

func (c cmppOptions) check() []error {
	var problems []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil || c.Addr == "" {
		problems = append(problems, errors.New("--cmpp-addr must be host:port with --sms-provider=cmpp"))
	}
	if n := len(c.SourceAddr); n == 0 || n > 6 {
		problems = append(problems, errors.New("--cmpp-source-addr must be 1 to 6 characters with --sms-provider=cmpp"))
	}
	if c.Secret == "" || c.SrcID == "" {
		problems = append(problems, errors.New("--cmpp-secret and --cmpp-src-id are required with --sms-provider=cmpp"))
	}
	if c.Conns < 1 || c.Window < 1 {
		problems = append(problems, errors.New("--cmpp-conns and --cmpp-window must be at least 1"))
	}
	if c.SubmitTimeout <= 0 || c.Heartbeat <= 0 {
		problems = append(problems, errors.New("--cmpp-submit-timeout and --cmpp-heartbeat must be positive"))
	}
	return problems
}

// cmpp builds the provider of checked options. A submit waits up to SubmitTimeout for a link and
// as long for each segment's answer; a call gets two of them (a code's text is one segment), which
// fits the default --dispatch-lease.
func (c cmppOptions) cmpp() (*provider.CMPP, time.Duration) {
	return &provider.CMPP{Config: cmpp.Config{Addr: c.Addr, SourceAddr: c.SourceAddr, Secret: c.Secret, SrcID: c.SrcID,
			ServiceID: c.ServiceID, Conns: c.Conns, Window: c.Window, SubmitTimeout: c.SubmitTimeout, Heartbeat: c.Heartbeat}},
		2*c.SubmitTimeout + time.Second
}
