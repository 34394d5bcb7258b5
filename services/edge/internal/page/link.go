package page

import (
	"net/http"
	"net/url"

	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	verificationv1 "github.com/icpverify/icpverify/pkg/gen/icp/verification/v1"
	"github.com/icpverify/icpverify/pkg/rpc"
)

// The page of an SMS's verification link, /v/{token}: the 短信核验 form for that one challenge,
// showing its masked phone read-only (the phone is the link's, so the form asks only for the code
// and the ID tail) and posting to itself, where Verify compares the entry with that challenge
// only. A link that is unknown, used, locked, cancelled or past its window is one page, "链接已失效",
// with HTTP 404: the service answers all of them alike, and so does the page.

// linkView is the view of the link page of token.
func (p *Page) linkView(w http.ResponseWriter, r *http.Request, token string) *view {
	v := p.newView(w, r, tabVerify)
	v.Link = true
	linkLang(v, token, v.Lang)
	return v
}

// linkLang sets the link page's language and the addresses that carry it.
func linkLang(v *view, token string, lang Language) {
	v.Lang, v.T = lang, catalog[lang]
	path := "/v/" + url.PathEscape(token)
	other := English
	if lang == English {
		other = Chinese
	}
	v.SwitchURL = path + "?" + url.Values{"lang": {string(other)}}.Encode()
	v.Action = path + "?" + url.Values{"lang": {string(lang)}}.Encode()
}

// lookup fills v with the link's masked phone; false: the page answered (a dead link, a failure).
func (p *Page) lookup(w http.ResponseWriter, r *http.Request, v *view, token string) bool {
	ctx, cancel := p.serviceCtx(r)
	defer cancel()
	resp, err := p.o.Verification.GetLink(ctx, &verificationv1.GetLinkRequest{Token: token})
	switch {
	case err == nil:
		v.PhoneMasked = resp.GetPhoneMasked()
		// The SMS's language is the person's: it is the page's unless they picked one.
		if l, ok := languageOf(resp.GetLocale()); ok && !v.langChosen && l != v.Lang {
			linkLang(v, token, l)
		}
		return true
	case rpc.Reason(err) == reason(verificationv1.ErrorReason_ERROR_REASON_LINK_NOT_FOUND),
		rpc.Reason(err) == reason(verificationv1.ErrorReason_ERROR_REASON_INVALID_LINK_TOKEN):
		p.dead(w, v)
	case status.Code(err) == codes.ResourceExhausted:
		p.answer(w, v, p.refusal(v, err, p.o.Clock.Now()))
	default:
		p.o.Log.Warn("page: link lookup failed", zap.String("grpc_code", status.Code(err).String()), zap.String("reason", rpc.Reason(err)))
		v.Answer = v.T.Unavailable
		p.render(w, v, http.StatusServiceUnavailable, true)
	}
	return false
}

// dead renders the one page of every link that is no longer valid.
func (p *Page) dead(w http.ResponseWriter, v *view) {
	v.Dead, v.Link, v.CaptchaOn = true, false, false
	v.Answer = v.T.LinkDead
	p.render(w, v, http.StatusNotFound, true)
}

// getLink shows the link's form. The lookup is rate limited per client like a form post.
func (p *Page) getLink(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	v := p.linkView(w, r, token)
	now := p.o.Clock.Now()
	if ok, wait := p.limit.allow(clientIP(r, p.o.TrustedProxies), now); !ok {
		v.Answer = fmtAt(v.T.RateLimited, v.T.at(now, wait))
		v.retryAfter = seconds(wait)
		p.answer(w, v, http.StatusTooManyRequests)
		return
	}
	if p.lookup(w, r, v, token) {
		p.render(w, v, http.StatusOK, false)
	}
}

// postLink checks the code and ID tail typed on the link's form against the link's challenge.
func (p *Page) postLink(w http.ResponseWriter, r *http.Request) {
	token := r.PathValue("token")
	v := p.linkView(w, r, token)
	ctx, cancel, ok := p.guard(w, r, v)
	if !ok {
		return
	}
	defer cancel()
	if !p.lookup(w, r, v, token) {
		return
	}
	v.Phone = "" // the link's: Verify takes it from the challenge
	v.IDTail = r.PostFormValue("id_tail")
	p.answer(w, v, p.verify(ctx, v, r.PostFormValue("code"), token, p.o.Clock.Now()))
}
