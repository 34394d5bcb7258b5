package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// freeBasePort finds four consecutive free ports for icpdev's --base-port.
func freeBasePort(t *testing.T) int {
	for range 50 {
		base := freePortNumber(t)
		ok := true
		for i := 1; i < 4 && ok; i++ {
			l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", base+i))
			if err != nil {
				ok = false
				continue
			}
			l.Close()
		}
		if ok && base+3 < 65536 {
			return base
		}
	}
	t.Fatal("no four consecutive free ports")
	return 0
}

func freePortNumber(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The one-process dev server needs no database: with PostgreSQL unreachable, the demo walks an
// order to UNDER_REVIEW.
func TestDevServerDemoWithoutDatabase(t *testing.T) {
	base := freeBasePort(t)
	var devOut bytes.Buffer
	edgeAddr := freeAddr(t)
	dev := exec.Command(filepath.Join(binDir, "icpdev"), fmt.Sprintf("--base-port=%d", base), "--edge-addr="+edgeAddr)
	// Point every PostgreSQL setting at a closed port: the memory store must not need any of them.
	dev.Env = append(os.Environ(), "DATABASE_URL=postgres://nobody@127.0.0.1:1/none?connect_timeout=1", "PGHOST=127.0.0.1", "PGPORT=1")
	w := lockedWriter{mu: new(sync.Mutex), buf: &devOut}
	dev.Stdout, dev.Stderr = w, w
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = dev.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = dev.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = dev.Process.Kill()
			t.Error("icpdev did not stop within 20s of Ctrl-C")
		}
		if t.Failed() {
			t.Logf("icpdev output:\n%s", tail(w.String(), 6000))
		}
	})
	eventually(t, 30*time.Second, "icpdev to print its five listening lines", func() (bool, string) {
		return strings.Count(w.String(), "listening on") == 5, w.String()
	})
	// The edge's line gives its base URL, and the REST API answers there (no credential needed in development).
	if want := "edge          listening on http://" + edgeAddr + " "; !strings.Contains(w.String(), want) {
		t.Errorf("icpdev output lacks %q:\n%s", want, w.String())
	}
	resp, err := http.Get("http://" + edgeAddr + "/v1/orders?pageSize=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"orders"`) {
		t.Errorf("GET /v1/orders through icpdev's edge: %d %s", resp.StatusCode, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	demo := exec.CommandContext(ctx, filepath.Join(binDir, "icpctl"),
		fmt.Sprintf("--filing-addr=127.0.0.1:%d", base), fmt.Sprintf("--verification-addr=127.0.0.1:%d", base+1),
		fmt.Sprintf("--sms-dispatch-addr=127.0.0.1:%d", base+2), fmt.Sprintf("--deadline-addr=127.0.0.1:%d", base+3), "demo")
	out, err := demo.CombinedOutput()
	if err != nil {
		t.Fatalf("icpctl demo: %v\n%s", err, out)
	}
	text := string(out)
	for _, want := range []string{"VERIFICATION_NOT_MATCHED", "PASSED_WAITING_FOR_OTHERS", "ALL_PASSED",
		"您的短信核验已全部完成，该请求将提交管局审核", "UNDER_REVIEW"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo output lacks %q:\n%s", want, text)
		}
	}
	if lines := strings.Split(strings.TrimSpace(text), "\n"); !strings.Contains(lines[len(lines)-1], "UNDER_REVIEW") {
		t.Errorf("the demo must end with the order UNDER_REVIEW; last line: %q", lines[len(lines)-1])
	}

	// A newcomer's path through the link: submit the example order, read the link and the code out
	// of the console SMS, open the link and post code and ID tail to it.
	ctl := func(args ...string) string {
		cmd := exec.CommandContext(ctx, filepath.Join(binDir, "icpctl"), append([]string{"--output", "json",
			fmt.Sprintf("--filing-addr=127.0.0.1:%d", base), fmt.Sprintf("--verification-addr=127.0.0.1:%d", base+1)}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("icpctl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var created struct {
		Order struct {
			OrderID string `json:"order_id"`
		} `json:"order"`
	}
	if err := json.Unmarshal([]byte(ctl("create", "-f", filepath.Join("..", "..", "examples", "orders", "first-filing.json"))), &created); err != nil {
		t.Fatal(err)
	}
	ctl("submit", created.Order.OrderID)
	// The example's principal: 13812345678, ID ending 051237.
	smsRE := regexp.MustCompile(`DEV SMS to 138\*\*\*\*5678 \[[^\]]+\]: .*码为(\d{6})，.*核验链接：(http://\S+)`)
	var code, link string
	eventually(t, 20*time.Second, "the example order's SMS with its link in icpdev's output", func() (bool, string) {
		all := smsRE.FindAllStringSubmatch(w.String(), -1)
		if all == nil {
			return false, tail(w.String(), 2000)
		}
		code, link = all[len(all)-1][1], all[len(all)-1][2]
		return true, ""
	})
	if !strings.HasPrefix(link, "http://"+edgeAddr+"/v/") {
		t.Fatalf("console SMS link %q is not the edge's page", link)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	resp, err = client.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(string(page))
	if resp.StatusCode != http.StatusOK || csrf == nil || !strings.Contains(string(page), "138****5678") {
		t.Fatalf("the link's page: HTTP %d:\n%s", resp.StatusCode, page)
	}
	resp, err = client.PostForm(link, url.Values{"csrf": {csrf[1]}, "code": {code}, "id_tail": {"051237"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "您的短信核验完成，请等待其他核验人进行短信核验") {
		t.Fatalf("verify through the link: HTTP %d:\n%s", resp.StatusCode, page)
	}
}
