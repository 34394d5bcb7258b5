package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
)

// Every report reaches the endpoint once, in POSTs of at most perPush, as SmsReport's JSON array.
func TestPushReportsSendsEachReportOnceInBoundedPushes(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	var sizes []int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var reports []providertest.AliyunReport
		if err := json.NewDecoder(r.Body).Decode(&reports); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		sizes = append(sizes, len(reports))
		for _, rp := range reports {
			got[rp.BizID]++
		}
		mu.Unlock()
		_, _ = w.Write([]byte(`{"code":0,"msg":"成功"}`))
	}))
	defer srv.Close()
	var reports []providertest.AliyunReport
	for i := range 250 {
		reports = append(reports, providertest.Accepted{Phone: "+8613700000001", MessageID: fmt.Sprint(i), ProviderID: fmt.Sprintf("biz-%d", i)}.AliyunReport(true, ""))
	}
	if err := pushReports(srv.URL, reports, 100, 3); err != nil {
		t.Fatal(err)
	}
	if len(got) != 250 || len(sizes) != 3 {
		t.Fatalf("%d distinct reports in %d pushes (%v), want 250 in 3", len(got), len(sizes), sizes)
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("report %s pushed %d times", id, n)
		}
	}
	for _, s := range sizes {
		if s > 100 {
			t.Fatalf("a push of %d reports, want at most 100", s)
		}
	}
}

// An endpoint that refuses fails the push, so no receipts figure is made of receipts never recorded.
func TestPushReportsFailsOnARefusal(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "forbidden", http.StatusForbidden)
	}))
	defer srv.Close()
	r := providertest.Accepted{Phone: "+8613700000001", ProviderID: "biz-1"}.AliyunReport(true, "")
	err := pushReports(srv.URL, []providertest.AliyunReport{r, r, r}, 2, 2)
	if err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("pushReports = %v, want the 403", err)
	}
}

func TestWaitForCountsUntilReached(t *testing.T) {
	calls := int64(0)
	err := waitFor(func() (int64, error) { calls++; return calls, nil }, 3, time.Minute, func() bool { return true })
	if err != nil || calls != 3 {
		t.Fatalf("waitFor = %v after %d counts, want nil after 3", err, calls)
	}
}

// A process that exited cannot get there: waitFor says so at once, not after its limit.
func TestWaitForStopsWhenTheProcessIsGone(t *testing.T) {
	err := waitFor(func() (int64, error) { return 7, nil }, 10, time.Hour, func() bool { return false })
	if err == nil || !strings.Contains(err.Error(), "7 of 10") || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("waitFor = %v, want 7 of 10 and the exit", err)
	}
	if err := waitFor(func() (int64, error) { return 0, fmt.Errorf("db down") }, 1, time.Hour, func() bool { return true }); err == nil ||
		err.Error() != "db down" {
		t.Fatalf("waitFor = %v, want the count's error", err)
	}
}

func TestRepeats(t *testing.T) {
	if n := repeats([]string{"a", "b", "a", "c", "a", "b"}); n != 3 {
		t.Fatalf("repeats = %d, want 3", n)
	}
	if n := repeats(nil); n != 0 {
		t.Fatalf("repeats(nil) = %d", n)
	}
}

func TestTargetLine(t *testing.T) {
	for _, tc := range []struct {
		got  float64
		want string
	}{
		{2000, "target sms_dispatch_per_s_cmpp >= 2000 msg/s: met"},
		{1999.9, "target sms_dispatch_per_s_cmpp >= 2000 msg/s: NOT met"},
	} {
		if line := targetLine("sms_dispatch_per_s_cmpp", tc.got, 2000, "msg/s"); line != tc.want {
			t.Errorf("targetLine(%v) = %q, want %q", tc.got, line, tc.want)
		}
	}
}
