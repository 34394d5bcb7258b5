package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	filingv1 "github.com/icpverify/icpverify/pkg/gen/icp/filing/v1"
)

// browser starts Debian's Chromium (headless, found on PATH: nothing is downloaded) for one test.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("chromium missing: .ci/run installs it")
		}
		t.Skip("chromium is not installed (apt-get install chromium fonts-noto-cjk)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("lang", "zh-CN"), chromedp.Flag("accept-lang", "zh-CN,zh"), chromedp.WindowSize(480, 960), chromedp.WSURLReadTimeout(60*time.Second))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(bctx); err != nil { // the browser lives as long as bctx: no timeout here
		t.Fatalf("start chromium: %v", err)
	}
	return bctx
}

// startPageEdge starts the pagetest edge on addr with the authority's cross-tenant key for its page.
func (s *suite) startPageEdge(addr string) *edge {
	s.t.Helper()
	keyFile := filepath.Join(s.t.TempDir(), "page-key")
	if err := os.WriteFile(keyFile, []byte(authorityKey+"\n"), 0o600); err != nil {
		s.t.Fatal(err)
	}
	p := &proc{name: "edge-pagetest", args: []string{"--http-addr=" + addr, "--filing-addr=" + s.addrs["filing"],
		"--verification-addr=" + s.addrs["verification"], "--page-api-key-file=" + keyFile, "--page-burst=50"}, out: &bytes.Buffer{}}
	p.start(s.t)
	s.procs["edge-pagetest"] = p
	e := &edge{t: s.t, url: "http://" + addr}
	eventually(s.t, 30*time.Second, "the edge to be ready", func() (bool, string) {
		if p.cmd.ProcessState != nil {
			s.t.Fatalf("the edge exited: %s", p.Output())
		}
		resp, err := http.Get(e.url + "/readyz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return e
}

// submitForm types into the form's fields with the keyboard only (focus the first, Tab between
// them, Enter submits) and returns the answer the page shows in its live region.
func submitForm(t *testing.T, bctx context.Context, url string, first string, keys string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.Focus(chromedp.CSS(first)), chromedp.KeyEvent(keys+"\r"),
		chromedp.WaitReady(chromedp.CSS(`#answer-text`))); err != nil {
		t.Fatalf("form at %s: %v", url, err)
	}
	answer, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(`#answer-text`)))
	if err != nil {
		t.Fatalf("answer at %s: %v", url, err)
	}
	return strings.TrimSpace(answer)
}

// linkRE finds the verification link in an SMS text.
var linkRE = regexp.MustCompile(`https?://\S+/v/[A-Za-z0-9_-]{22}`)

// The 短信核验 page in real Chromium, in front of the credentialed suite: a wrong check shows the
// uniform text, the first verifier sees "waiting for others", a resend goes through the captcha,
// the link from an SMS, the English switch, and the second verifier sees "all done" with
// JavaScript disabled. With UPDATE_SCREENSHOTS=1 it writes the README's screenshots of both tabs
// to docs/.
func TestPageInChromium(t *testing.T) {
	bctx := browser(t)
	addr := freeAddr(t)
	s := startSuite(t, options{verification: []string{"--verify-link-base=http://" + addr + "/v"}})
	e := s.startPageEdge(addr)

	principal, web := person("张三", phoneA), person("李四", phoneB)
	order := s.submit(firstFiling(principal, &filingv1.Website{Domain: "page.example.cn", Name: "页面", Person: web}))
	codes := s.waitCodes(1, phoneA, phoneB)

	if os.Getenv("UPDATE_SCREENSHOTS") != "" {
		for _, shot := range []struct{ path, file string }{{"/", "page-verify.png"}, {"/?tab=resend", "page-resend.png"}} {
			ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
			if err := chromedp.Do(ctx, chromedp.Navigate(e.url+shot.path), chromedp.WaitReady(chromedp.CSS(`#submit`))); err != nil {
				t.Fatal(err)
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			cancel()
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join("..", "..", "docs", shot.file), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	// zh-CN by default; a wrong code gets the one mismatch text (the phone in another spelling).
	got := submitForm(t, bctx, e.url+"/", "#code", wrong(codes[phoneA])+"\t138 1234 5678\t"+tailOf(principal))
	if got != "该条验证库里找不到记录或已完成验证" {
		t.Errorf("wrong code: %q", got)
	}
	got = submitForm(t, bctx, e.url+"/", "#code", codes[phoneA]+"\t13812345678\t"+strings.ToLower(tailOf(principal)))
	if got != "您的短信核验完成，请等待其他核验人进行短信核验" {
		t.Errorf("first verifier: %q", got)
	}

	// 短信重发 through the captcha: the page shows an image (and audio); the test reads the answer
	// through the pagetest binary's hook.
	ctx, cancel := context.WithTimeout(bctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/?tab=resend")); err != nil {
		t.Fatal(err)
	}
	captchaID, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`input[name=captcha_id]`), "value"))
	if err != nil || !captchaID.Exists {
		t.Fatalf("resend tab: %v (captcha id %+v)", err, captchaID)
	}
	resp, err := http.Get(e.url + "/page-test/captcha/" + captchaID.Value)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if len(answer) != 6 {
		t.Fatalf("captcha answer %q", answer)
	}
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS(`#phone`)), chromedp.KeyEvent("13987654321\t"+tailOf(web)),
		chromedp.SendKeys(chromedp.CSS(`#captcha`), string(answer)), chromedp.Submit(chromedp.CSS(`#captcha`)),
		chromedp.WaitReady(chromedp.CSS(`#answer-text`))); err != nil {
		t.Fatal(err)
	}
	resent, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(`#answer-text`)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resent, "您的短信已发送成功") {
		t.Errorf("resend: %q", resent)
	}
	newCode := s.waitCodes(2, phoneB)[phoneB]

	// The link from an SMS: a third person's order; the text carries the link to the page of that
	// one challenge, which shows the masked phone and asks only for the code and the ID tail.
	third := person("王五", phoneC)
	linked := s.submit(firstFiling(third, &filingv1.Website{Domain: "link.example.cn", Name: "链接", Person: third}))
	code := s.waitCodes(1, phoneC)[phoneC]
	posts := s.gateway.ForPhone(phoneC)
	link := linkRE.FindString(posts[len(posts)-1].Text)
	if !strings.HasPrefix(link, e.url+"/v/") {
		t.Fatalf("the SMS %q carries no link to the page at %s", posts[len(posts)-1].Text, e.url)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(link), chromedp.WaitReady(chromedp.CSS(`#phone[readonly]`))); err != nil {
		t.Fatalf("open the link: %v", err)
	}
	if masked, err := chromedp.Run(ctx, chromedp.Value(chromedp.CSS(`#phone`))); err != nil || masked != "137****1111" {
		t.Errorf("the link page shows phone %q (%v), want 137****1111", masked, err)
	}
	got = submitForm(t, bctx, link, "#code", code+"\t\t"+tailOf(third))
	if got != "您的短信核验已全部完成，该请求将提交管局审核" {
		t.Errorf("verify through the link: %q", got)
	}
	s.waitState(linked.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
	// Passed, the link is dead: one page, HTTP 404.
	resp, err = http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(body), "链接已失效") {
		t.Errorf("a used link: HTTP %d, want 404 and 链接已失效", resp.StatusCode)
	}

	// JavaScript off from here on: the page works without it. The English switch is a link.
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(e.url+"/"), chromedp.Click(chromedp.CSS(`a.lang`)),
		chromedp.WaitReady(chromedp.CSS(`html[lang=en] label[for=code]`))); err != nil {
		t.Fatalf("English switch: %v", err)
	}
	if label, err := chromedp.Run(ctx, chromedp.TextContent(chromedp.CSS(`label[for=code]`))); err != nil || label != "SMS verification code" {
		t.Errorf("English label %q %v", label, err)
	}
	got = submitForm(t, bctx, e.url+"/verify", "#code", newCode+"\t+86 139 8765 4321\t"+tailOf(web))
	if got != "All verifiers are done; the order goes to the administration's review." {
		t.Errorf("second verifier (English, JavaScript off): %q", got)
	}
	s.waitState(order.OrderId, filingv1.OrderState_ORDER_STATE_UNDER_REVIEW, 15*time.Second)
}
