package page

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"strings"
	"time"

	"github.com/dchest/captcha"
)

// captchaLen digits, pictured 240x80, valid for captchaTTL, each used at most once.
const (
	captchaLen = 6
	captchaTTL = 10 * time.Minute
	imgW, imgH = 240, 80
)

// captchas are the page's own captcha store (not dchest/captcha's process-wide one): the answers
// stay on the server, the browser only gets the id. Unused ones expire after captchaTTL.
type captchas struct {
	store captcha.Store
}

func newCaptchas() *captchas {
	return &captchas{store: captcha.NewMemoryStore(1000, captchaTTL)}
}

// create mints a captcha and returns its id.
func (c *captchas) create() string {
	id := captchaID()
	c.store.Set(id, captcha.RandomDigits(captchaLen))
	return id
}

// check consumes the captcha id and tells whether typed (digits, spaces ignored) was its answer.
func (c *captchas) check(id, typed string) bool {
	if id == "" {
		return false
	}
	want := c.store.Get(id, true)
	if len(want) == 0 {
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
	d := c.store.Get(id, false)
	b := make([]byte, len(d))
	for i, x := range d {
		b[i] = '0' + x
	}
	return string(b)
}

// serve writes /captcha/{id}.png or /captcha/{id}.wav?lang=zh|en.
func (c *captchas) serve(w http.ResponseWriter, r *http.Request) {
	file := r.PathValue("file")
	id, ext, _ := strings.Cut(file, ".")
	digits := c.store.Get(id, false)
	secure(w.Header())
	w.Header().Set("Cache-Control", "no-store")
	if len(digits) == 0 {
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

func captchaID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
