// Package page is the reference 短信核验 / 短信重发 page of the edge: two server-rendered forms (they
// work with JavaScript off; the page has none) that call VerificationService's Verify and
// ResendCode with the edge's own credential (the authority's portal key: the person is not a
// tenant) and show the answers in the MIIT portal's words, zh-CN by default or English.
// It protects itself: a signed double-submit CSRF token, a strict Content-Security-Policy without
// framing, no-store answers, a token bucket per client address, and an offline image and audio
// captcha (github.com/dchest/captcha) checked here on the resend form (and the verify form when
// configured).
package page

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"

	"github.com/icpverify/icpverify/pkg/clock"
)

//go:embed assets
var assets embed.FS

var tmpl = template.Must(template.ParseFS(assets, "assets/page.html"))

// Options configure the page.
type Options struct {
	// Verification is the verification service's public API.
	Verification verificationv1.VerificationServiceClient
	// APIKey is sent as x-api-key on every call ("": none, for a suite whose portal-auth is none).
	APIKey string
	// CaptchaOnVerify asks for the captcha on the verify form too (always on the resend form).
	CaptchaOnVerify bool
	// RatePerSecond and Burst bound the form posts of one client address (RatePerSecond 0: no limit).
	RatePerSecond float64
	Burst         int
	// TrustedProxies are the proxies whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// RequestTimeout bounds each call to the service.
	RequestTimeout time.Duration
	// Secret keys the CSRF tokens and the captchas. Replicas behind one address share it, so a form
	// drawn on one is accepted by another; nil: a random secret of this process (one replica only).
	Secret []byte
	Clock  clock.Clock
	Log    *zap.Logger
}

// Page serves the page's routes.
type Page struct {
	o       Options
	csrf    *csrf
	limit   *limiter
	images  *limiter // captcha pictures and sounds cost CPU to draw: bounded per client too
	captcha *captchas
}

// testHook, set only in a binary built with the pagetest tag, adds the tests' routes.
var testHook func(mux *http.ServeMux, p *Page)

// New returns the page.
func New(o Options) (*Page, error) {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.Secret == nil {
		o.Secret = make([]byte, 32)
		if _, err := rand.Read(o.Secret); err != nil {
			return nil, err
		}
	} else if len(o.Secret) < minSecret {
		return nil, fmt.Errorf("page: the secret has %d bytes, want at least %d", len(o.Secret), minSecret)
	}
	return &Page{o: o, csrf: &csrf{key: derive(o.Secret, "csrf")}, limit: newLimiter(o.RatePerSecond, o.Burst),
		images: newLimiter(3*o.RatePerSecond, 3*o.Burst), captcha: newCaptchas(o.Secret, o.Clock.Now)}, nil
}

// minSecret is the shortest page secret accepted (bytes).
const minSecret = 32

// Register adds the page's routes to mux: GET / and /verify (the page), POST /verify and
// /resend (the forms), GET and POST /v/{token} (the page of an SMS's link, link.go), the
// captcha's image and audio, and the stylesheet.
func (p *Page) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /{$}", p.get)
	mux.HandleFunc("GET /verify", p.get)
	mux.HandleFunc("POST /verify", p.post(tabVerify))
	mux.HandleFunc("POST /resend", p.post(tabResend))
	mux.HandleFunc("GET /v/{token}", p.getLink)
	mux.HandleFunc("POST /v/{token}", p.postLink)
	mux.HandleFunc("GET /captcha/{file}", func(w http.ResponseWriter, r *http.Request) {
		if ok, wait := p.images.allow(clientIP(r, p.o.TrustedProxies), p.o.Clock.Now()); !ok {
			w.Header().Set("Retry-After", seconds(wait))
			http.Error(w, http.StatusText(http.StatusTooManyRequests), http.StatusTooManyRequests)
			return
		}
		p.captcha.serve(w, r)
	})
	mux.HandleFunc("GET /static/page.css", func(w http.ResponseWriter, _ *http.Request) {
		secure(w.Header())
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		b, _ := assets.ReadFile("assets/page.css")
		_, _ = w.Write(b)
	})
	if testHook != nil {
		testHook(mux, p)
	}
}

const (
	tabVerify = "verify"
	tabResend = "resend"
)

// view is what the template renders.
type view struct {
	Lang              Language
	T                 *texts
	Tab               string
	VerifyURL         string
	ResendURL         string
	SwitchURL         string
	Action            string
	CSRF              string
	CaptchaID         string
	CaptchaOn         bool
	Phone, IDTail     string
	Answer            string
	AnswerOK          bool
	AnswerNote        string // advice after the answer: the replaced code's SMS never arrived
	FieldErr          map[string]string
	CaptchaImg, Audio string
	// Link: the page of an SMS link, for the challenge whose masked phone is PhoneMasked; Dead: the
	// link is no longer valid (link.go).
	Link, Dead  bool
	PhoneMasked string
	retryAfter  string
	// langChosen: the language came from ?lang= or the switch's cookie, not from a default.
	langChosen bool
}

// languageOf is the page language a tag names (a ?lang= value, an Accept-Language tag, an SMS
// locale); ok false for none of ours.
func languageOf(tag string) (Language, bool) {
	switch strings.ToLower(tag) {
	case "en", "en-us", "en-gb":
		return English, true
	case "zh", "zh-cn", "zh-hans", "zh-hans-cn":
		return Chinese, true
	}
	return "", false
}

// language picks ?lang=, then the cookie a previous switch set (chosen: the person picked it), then
// Accept-Language; zh-CN otherwise.
func language(w http.ResponseWriter, r *http.Request) (lang Language, chosen bool) {
	if l, ok := languageOf(r.URL.Query().Get("lang")); ok {
		http.SetCookie(w, &http.Cookie{Name: "icp_lang", Value: string(l), Path: "/", SameSite: http.SameSiteLaxMode,
			MaxAge: 365 * 24 * 3600, HttpOnly: true})
		return l, true
	}
	if c, err := r.Cookie("icp_lang"); err == nil {
		if l, ok := languageOf(c.Value); ok {
			return l, true
		}
	}
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, _, _ := strings.Cut(strings.TrimSpace(part), ";")
		if l, ok := languageOf(tag); ok {
			return l, false
		}
		if base, _, _ := strings.Cut(tag, "-"); base != tag {
			if l, ok := languageOf(base); ok {
				return l, false
			}
		}
	}
	return Chinese, false
}

func (p *Page) newView(w http.ResponseWriter, r *http.Request, tab string) *view {
	lang, chosen := language(w, r)
	v := &view{Lang: lang, T: catalog[lang], Tab: tab, FieldErr: map[string]string{}, langChosen: chosen}
	q := func(t string, l Language) string { return "/?" + url.Values{"tab": {t}, "lang": {string(l)}}.Encode() }
	v.VerifyURL, v.ResendURL = q(tabVerify, lang), q(tabResend, lang)
	other := English
	if lang == English {
		other = Chinese
	}
	v.SwitchURL = q(tab, other)
	v.Action = "/" + tab + "?" + url.Values{"lang": {string(lang)}}.Encode()
	v.CSRF = p.csrf.token(w, r)
	v.CaptchaOn = tab == tabResend || p.o.CaptchaOnVerify
	return v
}

func (p *Page) get(w http.ResponseWriter, r *http.Request) {
	tab := tabVerify
	if r.URL.Query().Get("tab") == tabResend {
		tab = tabResend
	}
	p.render(w, p.newView(w, r, tab), http.StatusOK, false)
}

func (p *Page) render(w http.ResponseWriter, v *view, code int, answer bool) {
	if v.CaptchaOn {
		v.CaptchaID = p.captcha.create()
		v.CaptchaImg = "/captcha/" + v.CaptchaID + ".png"
		audioLang := "zh"
		if v.Lang == English {
			audioLang = "en"
		}
		v.Audio = "/captcha/" + v.CaptchaID + ".wav?lang=" + audioLang
	}
	h := w.Header()
	secure(h)
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Language", string(v.Lang))
	h.Set("Vary", "Accept-Language, Cookie")
	// Answers (and the forms' one-time tokens) are never kept by a cache or the back button.
	h.Set("Cache-Control", "no-store")
	if answer {
		h.Set("Pragma", "no-cache")
	}
	w.WriteHeader(code)
	if err := tmpl.Execute(w, v); err != nil {
		p.o.Log.Warn("page template", zap.Error(err))
	}
}

func (p *Page) post(tab string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v := p.newView(w, r, tab)
		ctx, cancel, ok := p.guard(w, r, v)
		if !ok {
			return
		}
		defer cancel()
		v.Phone = strings.TrimSpace(r.PostFormValue("phone"))
		v.IDTail = strings.TrimSpace(r.PostFormValue("id_tail"))
		var code int
		if tab == tabVerify {
			code = p.verify(ctx, v, r.PostFormValue("code"), "", p.o.Clock.Now())
		} else {
			code = p.resend(ctx, v, p.o.Clock.Now())
		}
		p.answer(w, v, code)
	}
}

// guard is what every form post passes first: the client's rate limit, the body's size, the CSRF
// token and the captcha (where the form has one). It answers the refusal itself (ok false), or
// returns the context of the service calls, carrying the edge's credential.
func (p *Page) guard(w http.ResponseWriter, r *http.Request, v *view) (context.Context, context.CancelFunc, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	now := p.o.Clock.Now()
	if ok, wait := p.limit.allow(clientIP(r, p.o.TrustedProxies), now); !ok {
		w.Header().Set("Retry-After", seconds(wait))
		v.Answer = fmtAt(v.T.RateLimited, v.T.at(now, wait))
		p.render(w, v, http.StatusTooManyRequests, true)
		return nil, nil, false
	}
	if err := r.ParseForm(); err != nil || !p.csrf.valid(r) {
		v.Answer = v.T.Disabled
		p.render(w, v, http.StatusForbidden, true)
		return nil, nil, false
	}
	if v.CaptchaOn && !p.captcha.check(r.PostFormValue("captcha_id"), r.PostFormValue("captcha")) {
		v.IDTail = strings.TrimSpace(r.PostFormValue("id_tail"))
		v.Phone = strings.TrimSpace(r.PostFormValue("phone"))
		v.FieldErr["captcha"] = v.T.CaptchaWrong
		v.Answer = v.T.CaptchaWrong
		p.render(w, v, http.StatusBadRequest, true)
		return nil, nil, false
	}
	ctx, cancel := p.serviceCtx(r)
	return ctx, cancel, true
}

// serviceCtx is the context of one call to the service: bounded, with the edge's credential.
func (p *Page) serviceCtx(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(r.Context(), p.o.RequestTimeout)
	if p.o.APIKey != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "x-api-key", p.o.APIKey)
	}
	return ctx, cancel
}

// answer renders a form's answer with its status (and Retry-After for a limit).
func (p *Page) answer(w http.ResponseWriter, v *view, code int) {
	if code == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", v.retryAfter)
	}
	p.render(w, v, code, true)
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "page-" + hex.EncodeToString(b)
}
