package cmpp_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/cmpp"
	"github.com/icpverify/icpverify/services/sms-dispatch/providertest"
)

// reports collects what OnReport receives.
type reports struct {
	mu  sync.Mutex
	got []cmpp.Report
}

func (r *reports) add(rep cmpp.Report) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, rep)
}

func (r *reports) all() []cmpp.Report {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cmpp.Report(nil), r.got...)
}

func TestReports(t *testing.T) {
	f := gateway(t)
	var rs reports
	var fake *providertest.CMPP = f
	c := dial(t, f, func(cfg *cmpp.Config) {
		cfg.OnReport = func(r cmpp.Report) {
			// The report's DELIVER_RESP went out before the callback runs.
			deadline := time.Now().Add(time.Second)
			for fake.ReportAcks()[r.MsgID] == 0 && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			if fake.ReportAcks()[r.MsgID] == 0 {
				t.Errorf("report for %d reached the callback before its DELIVER_RESP", r.MsgID)
			}
			rs.add(r)
		}
	})
	f.Reports(20*time.Millisecond, false)
	f.ReportStat("+8613900002222", "UNDELIV")
	ctx := context.Background()
	ok, err := c.Submit(ctx, cmpp.Submission{Phone: phone, Text: "delivered"})
	if err != nil {
		t.Fatal(err)
	}
	bad, err := c.Submit(ctx, cmpp.Submission{Phone: "+8613900002222", Text: "undelivered"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "two reports", func() bool { return len(rs.all()) == 2 })
	byID := map[uint64]cmpp.Report{}
	for _, r := range rs.all() {
		byID[r.MsgID] = r
	}
	if r := byID[ok[0]]; !r.Delivered() || r.Phone != phone || r.DoneTime.IsZero() || time.Since(r.DoneTime) > 2*time.Minute {
		t.Fatalf("delivered report: %+v", r)
	}
	if r := byID[bad[0]]; r.Stat != "UNDELIV" || r.Delivered() || r.Phone != "+8613900002222" {
		t.Fatalf("undelivered report: %+v", r)
	}

	// Held back, then released newest first and twice each: the client passes every one on, in the
	// order it came (deduplication is the receipt store's job), and acknowledges each.
	f.HoldReports()
	var ids []uint64
	for _, text := range []string{"one", "two", "three"} {
		got, err := c.Submit(ctx, cmpp.Submission{Phone: phone, Text: text})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, got[0])
	}
	f.ReleaseReports(true, true)
	eventually(t, "six more reports", func() bool { return len(rs.all()) == 8 })
	later := rs.all()[2:]
	for i, want := range []uint64{ids[2], ids[2], ids[1], ids[1], ids[0], ids[0]} {
		if later[i].MsgID != want {
			t.Fatalf("report %d is for %d, want %d", i, later[i].MsgID, want)
		}
	}
	eventually(t, "each duplicate acknowledged", func() bool { return f.ReportAcks()[ids[0]] == 2 })
}

func TestManySubmitters(t *testing.T) {
	f := gateway(t)
	var delivered atomic.Int64
	c := dial(t, f, func(cfg *cmpp.Config) {
		cfg.Conns, cfg.Window = 3, 4
		cfg.OnReport = func(cmpp.Report) { delivered.Add(1) }
	})
	_, errs := submitAll(c, 300, "many")
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if f.Connects() != 3 || f.MaxUnacked() > 4 || len(f.Messages()) != 300 {
		t.Fatalf("links %d, max unacked %d, accepted %d", f.Connects(), f.MaxUnacked(), len(f.Messages()))
	}
	eventually(t, "300 reports", func() bool { return delivered.Load() == 300 })
}

// BenchmarkCMPPSubmit submits one-segment texts from many goroutines through a loopback fake
// that also sends a report for each.
func BenchmarkCMPPSubmit(b *testing.B) {
	f := providertest.NewCMPP(account, secret)
	defer f.Close()
	c, err := cmpp.Dial(context.Background(), cmpp.Config{Addr: f.Addr(), SourceAddr: account, Secret: secret,
		SrcID: "10690001", Conns: 2, Window: 16, OnReport: func(cmpp.Report) {}})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	b.SetParallelism(16)
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Submit(context.Background(), cmpp.Submission{Phone: phone, Text: "【工信部】验证码123456"}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
