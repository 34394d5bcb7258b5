//go:build pagetest

package page

import "net/http"

// The tests' captcha hook: only in a binary built with -tags pagetest (the browser tests build
// one); the production binary has no route, flag or setting that reveals an answer.
func init() {
	testHook = func(mux *http.ServeMux, p *Page) {
		mux.HandleFunc("GET /page-test/captcha/{id}", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte(p.captcha.answer(r.PathValue("id"))))
		})
	}
}
