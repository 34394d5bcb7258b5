package page

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// csp is the page's Content-Security-Policy: everything from the edge itself, no script at all
// (the page needs none), no framing, forms post only here.
const csp = "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; " +
	"img-src 'self'; media-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'"

// secure sets the headers every page answer carries.
func secure(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
}

// csrfCookie holds the browser's random secret; the forms carry an HMAC of it (a signed double
// submit): a page of another origin can neither read the cookie nor compute the token.
const csrfCookie = "icp_csrf"

type csrf struct{ key []byte }

func (c *csrf) sign(secret string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("icp-page-csrf:" + secret))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// token returns the form token for r's secret, setting a new secret cookie when r has none.
func (c *csrf) token(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) >= 32 {
		return c.sign(ck.Value)
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	secret := base64.RawURLEncoding.EncodeToString(b)
	http.SetCookie(w, &http.Cookie{Name: csrfCookie, Value: secret, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	return c.sign(secret)
}

// valid tells whether the posted form token matches r's secret cookie.
func (c *csrf) valid(r *http.Request) bool {
	ck, err := r.Cookie(csrfCookie)
	if err != nil || len(ck.Value) < 32 {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(c.sign(ck.Value)))
}

// clientIP is the address of the person's browser: the connection's peer, or, when that peer is one
// of the trusted proxies, the right-most X-Forwarded-For entry that is not a trusted proxy itself.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	peer = peer.Unmap()
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	if !isTrusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return peer // a hop we cannot read: count the request against the proxy
		}
		if a = a.Unmap(); !isTrusted(a) {
			return a
		}
	}
	return peer
}

// limiter is a token bucket per client address, on the injected clock; idle buckets are dropped.
type limiter struct {
	mu      sync.Mutex
	every   rate.Limit
	burst   int
	buckets map[netip.Addr]*bucket
	swept   time.Time
}

type bucket struct {
	l    *rate.Limiter
	last time.Time
}

func newLimiter(perSecond float64, burst int) *limiter {
	return &limiter{every: rate.Limit(perSecond), burst: burst, buckets: map[netip.Addr]*bucket{}}
}

// allow takes a token of ip's bucket at now; when none is left it returns how long until one is.
func (l *limiter) allow(ip netip.Addr, now time.Time) (bool, time.Duration) {
	if l == nil || l.every <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		idle := time.Duration(float64(l.burst)/float64(l.every)*float64(time.Second)) + time.Minute
		for k, b := range l.buckets {
			if now.Sub(b.last) > idle {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b := l.buckets[ip]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(l.every, l.burst)}
		l.buckets[ip] = b
	}
	b.last = now
	r := b.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}
