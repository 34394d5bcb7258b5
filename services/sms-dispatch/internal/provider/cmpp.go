package provider

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/cmpp"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
)

// CMPPName is the provider name receipts and message_provider_ids carry.
const CMPPName = "cmpp"

// Recorder is the store's one receipt use case (store.Store, memstore.Store): a batch of receipts in
// one transaction, an outcome each.
type Recorder interface {
	RecordReceipts(ctx context.Context, rs []domain.Receipt) ([]domain.ReceiptOutcome, error)
}

// maxReceiptBatch bounds the receipts the recorder hands the store at once.
const maxReceiptBatch = 256

// ReceiptCounter counts a receipt by provider and outcome (dispatcher.Metrics: icp_sms_receipts_total).
type ReceiptCounter interface {
	Receipt(provider, result string)
}

// CMPP sends Text over CMPP 3.0 to a carrier gateway (internal/cmpp) and records the gateway's
// status reports through Receipts, matched by ("cmpp", decimal Msg_Id). The link is dialled on the
// first Send, so building the provider (and checking flags) touches no network.
//
// A long text is one SUBMIT and one report per segment. The message is UNDELIVERED as soon as any
// segment is (its Stat is the code), DELIVERED only once every segment is DELIVRD: the text is the
// code, and a code missing a segment is no code. A report's segment is known by the Msg_Ids this
// process's Send got; while a long text is being sent, a DELIVRD report for an id not known may be
// one of its segments (the gateway reports a segment as soon as it acknowledges it) and waits for
// those Sends to return, at most Grace; it is then recorded on its own, so a report for a long
// text another replica sent decides the message by that segment alone.
// Segments pending completion are kept up to domain.ParkedReceiptTTL.
type CMPP struct {
	Config   cmpp.Config    // OnReport is the provider's own
	Receipts Recorder       // set before the first Send; nil drops reports
	Counter  ReceiptCounter // counts each recorded report; nil counts nothing
	Clock    clock.Clock
	Log      *zap.Logger
	// Grace is how long a DELIVRD report of an unknown Msg_Id waits for its Send (default
	// 2×SubmitTimeout, at least 2 s).
	Grace time.Duration

	dialMu  sync.Mutex
	client  *cmpp.Client
	dialErr error
	dialAt  time.Time
	closed  bool

	mu      sync.Mutex
	groups  map[uint64]*cmppGroup
	multi   int // long texts being sent
	orphans map[uint64]cmppOrphan
	out     chan domain.Receipt
	done    chan struct{} // closed by Close
	stopped chan struct{} // closed when record returns
}

type cmppGroup struct {
	ids       []uint64
	delivered map[uint64]bool
	at        time.Time
}

type cmppOrphan struct {
	r  cmpp.Report
	at time.Time
}

// Name is "cmpp".
func (*CMPP) Name() string { return CMPPName }

// Send submits m.Text (split into segments) and returns the Msg_Ids as decimal strings, one per
// segment. The gateway's classes map one to one; a text accepted only in part fails Transient
// (its retry sends it whole again: CMPP has no idempotency key).
func (p *CMPP) Send(ctx context.Context, m Message) (Accepted, error) {
	c, err := p.dial(ctx)
	if err != nil {
		return Accepted{}, cmppError(err)
	}
	segs, _, _ := cmpp.SplitUCS2(m.Text, 0)
	multi := len(segs) > 1
	if multi {
		p.mu.Lock()
		p.multi++
		p.mu.Unlock()
	}
	ids, err := c.Submit(ctx, cmpp.Submission{ID: m.ID, Phone: m.Phone, Text: m.Text})
	p.register(ids, err == nil, multi)
	if err != nil {
		return Accepted{}, cmppError(err)
	}
	acc := Accepted{ProviderIDs: make([]string, len(ids))}
	for i, id := range ids {
		acc.ProviderIDs[i] = strconv.FormatUint(id, 10)
	}
	return acc, nil
}

// cmppError makes a cmpp error the provider's *Error, with its class.
func cmppError(err error) error {
	class := cmpp.ClassOf(err)
	var e *cmpp.Error
	if !errors.As(err, &e) {
		return &Error{Provider: CMPPName, Class: class, Code: "link", Detail: gatewayError(err.Error())}
	}
	code := e.Op
	if e.Code != 0 {
		code = e.Op + " " + strconv.FormatUint(uint64(e.Code), 10)
	}
	// The cmpp error masks the phone; digit runs are masked once more for the store.
	return &Error{Provider: CMPPName, Class: class, Code: code, Detail: gatewayError(e.Detail)}
}

// dial returns the client, dialling it on first use; a failed dial is answered again for
// ReconnectMin instead of dialling once per worker.
func (p *CMPP) dial(ctx context.Context) (*cmpp.Client, error) {
	p.dialMu.Lock()
	defer p.dialMu.Unlock()
	if p.closed {
		return nil, &cmpp.Error{Class: cmpp.Transient, Op: "submit", Detail: "provider closed"}
	}
	if p.client != nil {
		return p.client, nil
	}
	p.init()
	now := p.Clock.Now()
	retry := max(p.Config.ReconnectMin, 500*time.Millisecond)
	if p.dialErr != nil && now.Sub(p.dialAt) < retry {
		return nil, p.dialErr
	}
	cfg := p.Config
	cfg.OnReport, cfg.Logger = p.onReport, p.Log
	c, err := cmpp.Dial(ctx, cfg)
	if err != nil {
		p.dialErr, p.dialAt = err, now
		return nil, err
	}
	p.client, p.dialErr = c, nil
	return c, nil
}

func (p *CMPP) init() {
	if p.out != nil {
		return
	}
	if p.Clock == nil {
		p.Clock = clock.Real{}
	}
	if p.Log == nil {
		p.Log = zap.NewNop()
	}
	if p.Grace <= 0 {
		p.Grace = max(2*p.Config.SubmitTimeout, 2*time.Second)
	}
	p.groups, p.orphans = map[uint64]*cmppGroup{}, map[uint64]cmppOrphan{}
	p.out, p.done, p.stopped = make(chan domain.Receipt, 4096), make(chan struct{}), make(chan struct{})
	go p.record()
}

// register ends a Send: the Msg_Ids of a long text sent (ok) are filed as its segments, and the
// reports that came before apply; once no long text is in flight, no waiting report can be one
// of its segments, so they are recorded alone.
func (p *CMPP) register(ids []uint64, ok, multi bool) {
	p.mu.Lock()
	if multi {
		p.multi--
	}
	var ready []cmpp.Report
	if ok {
		g := &cmppGroup{ids: ids, delivered: map[uint64]bool{}, at: p.Clock.Now()}
		var early []cmpp.Report
		for _, id := range ids {
			if o, found := p.orphans[id]; found {
				delete(p.orphans, id)
				early = append(early, o.r)
			}
		}
		if len(ids) > 1 {
			for _, id := range ids {
				p.groups[id] = g
			}
		}
		for _, r := range early {
			ready = p.applyLocked(ready, r, g)
		}
	}
	if p.multi == 0 {
		for id, o := range p.orphans {
			delete(p.orphans, id)
			ready = append(ready, o.r)
		}
	}
	p.mu.Unlock()
	p.send(ready)
}

// onReport is the client's OnReport: one goroutine, in order.
func (p *CMPP) onReport(r cmpp.Report) {
	p.mu.Lock()
	now := p.Clock.Now()
	ready := p.expireLocked(nil, now)
	if g := p.groups[r.MsgID]; g == nil && r.Delivered() && p.multi > 0 {
		// It may be a segment of a long text whose Send has not returned: wait for it, or Grace.
		p.orphans[r.MsgID] = cmppOrphan{r: r, at: now}
	} else {
		ready = p.applyLocked(ready, r, g)
	}
	p.mu.Unlock()
	p.send(ready)
}

// applyLocked appends r to ready, unless it is a DELIVRD segment of g with others pending.
func (p *CMPP) applyLocked(ready []cmpp.Report, r cmpp.Report, g *cmppGroup) []cmpp.Report {
	if g != nil && r.Delivered() {
		g.delivered[r.MsgID] = true
		if len(g.delivered) < len(g.ids) {
			return ready
		}
	}
	if g != nil {
		for _, id := range g.ids {
			delete(p.groups, id)
		}
	}
	return append(ready, r)
}

// expireLocked appends orphans past Grace (recorded on their own) and forgets groups past the
// parking TTL.
func (p *CMPP) expireLocked(ready []cmpp.Report, now time.Time) []cmpp.Report {
	for id, o := range p.orphans {
		if now.Sub(o.at) >= p.Grace {
			delete(p.orphans, id)
			ready = append(ready, o.r)
		}
	}
	for id, g := range p.groups {
		if now.Sub(g.at) >= domain.ParkedReceiptTTL {
			delete(p.groups, id)
		}
	}
	return ready
}

// send queues the receipts of reports for the recorder.
func (p *CMPP) send(reports []cmpp.Report) {
	for _, r := range reports {
		rc := domain.Receipt{Provider: CMPPName, ProviderID: strconv.FormatUint(r.MsgID, 10), Delivered: r.Delivered(),
			Code: r.Stat, At: p.Clock.Now()}
		select {
		case p.out <- rc:
		case <-p.done:
			return
		}
	}
}

// record hands receipts to the store, all those queued at once (up to maxReceiptBatch: one
// transaction instead of one each, so receipts keep up with sends), retrying a failed batch whole
// (the gateway was acknowledged already, so a receipt the store refused would be lost; a repeat
// changes nothing twice); it also ages orphans once a second. After Close it records what is
// queued, once each.
func (p *CMPP) record() {
	defer close(p.stopped)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-p.done:
			for batch := p.drain(nil); len(batch) > 0; batch = p.drain(nil) {
				p.store(batch)
			}
			return
		case <-tick.C:
			p.mu.Lock()
			ready := p.expireLocked(nil, p.Clock.Now())
			p.mu.Unlock()
			// Not p.send: this goroutine empties p.out, so it must not wait on it.
			batch := make([]domain.Receipt, 0, len(ready))
			for _, r := range ready {
				batch = append(batch, domain.Receipt{Provider: CMPPName, ProviderID: strconv.FormatUint(r.MsgID, 10),
					Delivered: r.Delivered(), Code: r.Stat, At: p.Clock.Now()})
			}
			for len(batch) > 0 {
				n := min(len(batch), maxReceiptBatch)
				p.store(batch[:n])
				batch = batch[n:]
			}
		case rc := <-p.out:
			p.store(p.drain([]domain.Receipt{rc}))
		}
	}
}

// drain appends to batch the receipts queued, without waiting, up to maxReceiptBatch in all.
func (p *CMPP) drain(batch []domain.Receipt) []domain.Receipt {
	for len(batch) < maxReceiptBatch {
		select {
		case rc := <-p.out:
			batch = append(batch, rc)
		default:
			return batch
		}
	}
	return batch
}

func (p *CMPP) store(batch []domain.Receipt) {
	if p.Receipts == nil || len(batch) == 0 {
		return
	}
	wait := 50 * time.Millisecond
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		outs, err := p.Receipts.RecordReceipts(ctx, batch)
		cancel()
		if err == nil {
			if p.Counter != nil {
				for _, out := range outs {
					p.Counter.Receipt(CMPPName, string(out))
				}
			}
			return
		}
		p.Log.Warn("cmpp reports not recorded; retrying", zap.Int("reports", len(batch)), zap.Error(err))
		select {
		case <-p.done:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, 5*time.Second)
	}
}

// Close ends the links (TERMINATE), records the reports already received and stops.
func (p *CMPP) Close() error {
	p.dialMu.Lock()
	if p.closed {
		p.dialMu.Unlock()
		return nil
	}
	p.closed = true
	c, started := p.client, p.out != nil
	p.dialMu.Unlock()
	var err error
	if c != nil {
		err = c.Close() // waits for OnReport, so every report received is queued
	}
	if started {
		close(p.done)
		<-p.stopped
	}
	return err
}
