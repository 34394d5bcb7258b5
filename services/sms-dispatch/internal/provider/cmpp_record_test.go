package provider

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// batchRecorder stands in for the store: the batches it got, refusing the first refuse of them.
type batchRecorder struct {
	mu      sync.Mutex
	batches [][]domain.Receipt
	refuse  int
}

func (b *batchRecorder) RecordReceipts(_ context.Context, rs []domain.Receipt) ([]domain.ReceiptOutcome, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.batches = append(b.batches, slices.Clone(rs))
	if b.refuse > 0 {
		b.refuse--
		return nil, errors.New("store down")
	}
	outs := make([]domain.ReceiptOutcome, len(rs))
	for i := range outs {
		outs[i] = domain.ReceiptApplied
	}
	return outs, nil
}

type receiptCount struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *receiptCount) Receipt(provider, result string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n[provider+"/"+result]++
}

func (c *receiptCount) of(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[key]
}

// The recorder hands the store what is queued as batches of at most maxReceiptBatch, in arrival
// order; a refused batch is tried again whole, and only the recorded receipts are counted, once each.
func TestCMPPRecorderRecordsQueuedReceiptsInBatches(t *testing.T) {
	const queued = maxReceiptBatch + 44
	rec, count := &batchRecorder{refuse: 1}, &receiptCount{n: map[string]int{}}
	p := &CMPP{Receipts: rec, Counter: count, Clock: clock.NewFake(time.Unix(0, 0)), Log: zap.NewNop()}
	p.out, p.done, p.stopped = make(chan domain.Receipt, queued), make(chan struct{}), make(chan struct{})
	for i := range queued {
		p.out <- domain.Receipt{Provider: CMPPName, ProviderID: strconv.Itoa(i), Delivered: true}
	}
	go p.record()
	for deadline := time.Now().Add(5 * time.Second); count.of("cmpp/applied") < queued; {
		if time.Now().After(deadline) {
			t.Fatalf("recorded %v of %d", count.of("cmpp/applied"), queued)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(p.done)
	<-p.stopped
	var sizes []int
	var ids []string
	for i, b := range rec.batches {
		sizes = append(sizes, len(b))
		for _, r := range b {
			if i > 0 { // the first batch was refused
				ids = append(ids, r.ProviderID)
			}
		}
	}
	if !slices.Equal(sizes, []int{maxReceiptBatch, maxReceiptBatch, queued - maxReceiptBatch}) {
		t.Fatalf("batch sizes %v", sizes)
	}
	for i, id := range ids {
		if id != strconv.Itoa(i) {
			t.Fatalf("receipt %d recorded as %s: out of order or twice", i, id)
		}
	}
	if len(ids) != queued || count.n["cmpp/applied"] != queued || len(count.n) != 1 {
		t.Fatalf("recorded %d, counted %v, want %d applied", len(ids), count.n, queued)
	}
}
