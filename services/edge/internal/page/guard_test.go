package page

import (
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		remote, xff, want string
		trusted           []netip.Prefix
	}{
		{"203.0.113.7:5000", "", "203.0.113.7", trusted},
		// X-Forwarded-For from a peer that is not a trusted proxy is ignored.
		{"203.0.113.7:5000", "198.51.100.1", "203.0.113.7", trusted},
		// Without --trusted-proxies nobody's X-Forwarded-For counts.
		{"10.1.2.3:5000", "198.51.100.1", "10.1.2.3", nil},
		// Behind a trusted proxy: the right-most hop that is not a trusted proxy; what the client
		// wrote itself further left is not believed.
		{"10.1.2.3:5000", "1.1.1.1, 198.51.100.1", "198.51.100.1", trusted},
		{"10.1.2.3:5000", "1.1.1.1, 198.51.100.1, 10.9.9.9", "198.51.100.1", trusted},
		{"10.1.2.3:5000", "garbage", "10.1.2.3", trusted},
		{"[::ffff:203.0.113.7]:5000", "", "203.0.113.7", trusted},
	} {
		r := httptest.NewRequest("POST", "/verify", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := clientIP(r, c.trusted); got.String() != c.want {
			t.Errorf("remote %s XFF %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

func TestLimiterPerAddress(t *testing.T) {
	l := newLimiter(1, 1)
	now := time.Unix(1000, 0)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	if ok, _ := l.allow(a, now); !ok {
		t.Fatal("first")
	}
	if ok, wait := l.allow(a, now); ok || wait != time.Second {
		t.Fatalf("second at once: %v %v", ok, wait)
	}
	if ok, _ := l.allow(b, now); !ok {
		t.Fatal("another address has its own bucket")
	}
	if ok, _ := l.allow(a, now.Add(time.Second)); !ok {
		t.Fatal("a second later")
	}
	// Idle buckets are dropped.
	l.allow(a, now.Add(time.Hour))
	if len(l.buckets) != 1 {
		t.Errorf("%d buckets after an hour", len(l.buckets))
	}
}
