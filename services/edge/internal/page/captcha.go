package page

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/dchest/captcha"
)

// captchaLen digits, pictured 240x80, valid for captchaTTL, each checked at most once.
const (
	captchaLen = 6
	captchaTTL = 10 * time.Minute
	imgW, imgH = 240, 80
	// defaultMaxUsed bounds the ids remembered as used (a check each, so bounded by the per-client
	// post limits); when it is full of unexpired ids every check fails (closed) until some expire.
	defaultMaxUsed = 200_000
)

// captchas are stateless: an id is a random nonce, its expiry and a MAC under the page's secret,
// and its digits are derived from the id under the same secret. Minting one stores nothing (a
// flood of page views costs no memory), and every replica sharing --page-secret-file can draw and
// check any replica's captcha. What a replica remembers is the ids already checked (right or
// wrong: one try per captcha), until they expire. A replay on another replica within the TTL is
// the price of holding no shared state; it is still one try per replica, and the per-client post
// limits apply.
type captchas struct {
	key []byte
	now func() time.Time

	mu      sync.Mutex
	used    map[[nonceLen]byte]time.Time
	maxUsed int
}

const (
	nonceLen = 12
	tagLen   = 16
	rawIDLen = nonceLen + 8 + tagLen
)

func newCaptchas(secret []byte, now func() time.Time) *captchas {
	return &captchas{key: derive(secret, "captcha"), now: now, used: map[[nonceLen]byte]time.Time{},
		maxUsed: defaultMaxUsed}
}

// create mints a captcha and returns its id.
func (c *captchas) create() string {
	raw := make([]byte, rawIDLen)
	_, _ = rand.Read(raw[:nonceLen])
	binary.BigEndian.PutUint64(raw[nonceLen:], uint64(c.now().Add(captchaTTL).Unix()))
	copy(raw[nonceLen+8:], c.mac("id", raw[:nonceLen+8])[:tagLen])
	return base64.RawURLEncoding.EncodeToString(raw)
}

// open returns the nonce and digits of a well-formed, authentic, unexpired id.
func (c *captchas) open(id string) (nonce [nonceLen]byte, digits []byte, ok bool) {
	raw, err := base64.RawURLEncoding.DecodeString(id)
	if err != nil || len(raw) != rawIDLen {
		return nonce, nil, false
	}
	body, tag := raw[:nonceLen+8], raw[nonceLen+8:]
	if !hmac.Equal(tag, c.mac("id", body)[:tagLen]) {
		return nonce, nil, false
	}
	if c.now().Unix() >= int64(binary.BigEndian.Uint64(raw[nonceLen:])) {
		return nonce, nil, false
	}
	copy(nonce[:], raw)
	sum := c.mac("digits", body)
	digits = make([]byte, captchaLen)
	for i := range digits {
		digits[i] = byte(binary.BigEndian.Uint16(sum[2*i:]) % 10) // bias 6/65536: negligible
	}
	return nonce, digits, true
}

func (c *captchas) mac(purpose string, b []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte("icp-page-captcha-" + purpose + ":"))
	m.Write(b)
	return m.Sum(nil)
}

// isUsed tells whether this replica already checked the nonce.
func (c *captchas) isUsed(nonce [nonceLen]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.used[nonce]
	return ok
}

// use remembers the nonce as checked; false when it already was, or when the memory is full.
func (c *captchas) use(nonce [nonceLen]byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.used[nonce]; ok {
		return false
	}
	if len(c.used) >= c.maxUsed {
		now := c.now()
		for n, exp := range c.used {
			if !now.Before(exp) {
				delete(c.used, n)
			}
		}
		if len(c.used) >= c.maxUsed {
			return false
		}
	}
	c.used[nonce] = c.now().Add(captchaTTL)
	return true
}

// check consumes the captcha id and tells whether typed (digits, spaces ignored) was its answer.
func (c *captchas) check(id, typed string) bool {
	nonce, want, ok := c.open(id)
	if !ok || !c.use(nonce) {
		return false
	}
	typed = strings.Map(func(r rune) rune {
		switch {
		case r >= '0' && r <= '9':
			return r
		case r >= '０' && r <= '９': // full-width digits from a Chinese input method
			return r - '０' + '0'
		}
		return -1
	}, typed)
	got := make([]byte, len(typed))
	for i := range typed {
		got[i] = typed[i] - '0'
	}
	return subtle.ConstantTimeCompare(got, want) == 1
}

// answer is the captcha's digits as text, without consuming it (the pagetest hook only).
func (c *captchas) answer(id string) string {
	_, d, _ := c.open(id)
	b := make([]byte, len(d))
	for i, x := range d {
		b[i] = '0' + x
	}
	return string(b)
}

// serve writes /captcha/{id}.png or /captcha/{id}.wav?lang=zh|en while the captcha is unused here.
func (c *captchas) serve(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	id, ext, _ := strings.Cut(file, ".")
	nonce, digits, ok := c.open(id)
	secure(w.Header())
	w.Header().Set("Cache-Control", "no-store")
	if !ok || c.isUsed(nonce) {
		http.NotFound(w, r)
		return
	}
	switch ext {
	case "png":
		w.Header().Set("Content-Type", "image/png")
		_, _ = captcha.NewImage(id, digits, imgW, imgH).WriteTo(w)
	case "wav":
		lang := "zh"
		if r.URL.Query().Get("lang") == "en" {
			lang = "en"
		}
		w.Header().Set("Content-Type", "audio/x-wav")
		_, _ = captcha.NewAudio(id, digits, lang).WriteTo(w)
	default:
		http.NotFound(w, r)
	}
}

// derive is the page's key for one purpose, from its secret: the CSRF tokens and the captchas never
// share a key.
func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("icp-page-key:" + purpose))
	return m.Sum(nil)
}
