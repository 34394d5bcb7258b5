package cmpp

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/pii"
)

// Config is a client's account and its link settings; zero durations and counts take the
// defaults.
type Config struct {
	// Addr is the gateway's host:port.
	Addr string
	// SourceAddr is the SP's enterprise code (6 characters): CONNECT's Source_Addr and SUBMIT's
	// Msg_src.
	SourceAddr string
	// Secret is the shared secret agreed with the carrier.
	Secret string
	// SrcID and ServiceID are used when a Submission leaves its own empty.
	SrcID, ServiceID string
	// Conns is how many links to keep (default 1).
	Conns int
	// Window is how many submits a link may have unacknowledged (default 16).
	Window int
	// SubmitTimeout bounds each wait of a submit: for a link, for a window slot, for each
	// SUBMIT_RESP (default 10s). A link that leaves a submit unanswered that long is dropped and
	// dialled again; a caller's own deadline only abandons its submit.
	SubmitTimeout time.Duration
	// DialTimeout bounds dialling and the CONNECT exchange (default 10s).
	DialTimeout time.Duration
	// Heartbeat is how long a link may stay silent before an ACTIVE_TEST (default 30s);
	// HeartbeatMisses unanswered ones in a row (default 3) declare the gateway dead.
	Heartbeat       time.Duration
	HeartbeatMisses int
	// ReconnectMin and ReconnectMax bound the exponential backoff between dials (defaults 500ms
	// and 30s).
	ReconnectMin, ReconnectMax time.Duration
	// ResultClasses overrides the class of SUBMIT_RESP Result codes (a gateway's own codes).
	ResultClasses map[uint32]Class
	// OnReport receives each status report, in order, after its DELIVER_RESP was sent; it runs on
	// one goroutine of the client, so a slow callback holds later reports back.
	OnReport func(Report)
	// Clock stamps CONNECT (default the wall clock).
	Clock  clock.Clock
	Logger *zap.Logger
}

func (c *Config) defaults() {
	if c.Conns <= 0 {
		c.Conns = 1
	}
	if c.Window <= 0 {
		c.Window = 16
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.SubmitTimeout, 10*time.Second)
	def(&c.DialTimeout, 10*time.Second)
	def(&c.Heartbeat, 30*time.Second)
	def(&c.ReconnectMin, 500*time.Millisecond)
	def(&c.ReconnectMax, 30*time.Second)
	if c.HeartbeatMisses <= 0 {
		c.HeartbeatMisses = 3
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
}

// Submission is one text to one phone.
type Submission struct {
	// ID is our message id; CMPP carries none, so it only names the message in logs.
	ID string
	// Phone is E.164; only +86 mobile numbers go (as their 11 digits).
	Phone string
	Text  string
	// SrcID is the service code the phone sees (106…); ServiceID the business code.
	SrcID, ServiceID string
}

// Report is a status report.
type Report struct {
	// MsgID is the Msg_Id SUBMIT_RESP gave for one segment.
	MsgID uint64
	// Stat is the carrier's state (DELIVRD when delivered).
	Stat                 string
	SubmitTime, DoneTime time.Time
	// Phone is E.164.
	Phone        string
	SMSCSequence uint32
}

// Delivered tells whether the carrier delivered the segment.
func (r Report) Delivered() bool { return r.Stat == "DELIVRD" }

// Client keeps Config.Conns authenticated links to one gateway; safe for concurrent use.
type Client struct {
	cfg     Config
	log     *zap.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	reports chan Report
	repDone chan struct{}
	ref     atomic.Uint32 // UDH reference numbers

	mu       sync.Mutex
	links    []*session // nil while a link is down
	ready    chan struct{}
	lastErr  error // the last dial's failure, for submits that find no link
	rr       int
	closed   bool
	connects atomic.Int64
}

// Dial connects and authenticates cfg.Conns links, failing with the first link's error (an
// *Error of class Account for a refused login); afterwards links that drop are dialled again in
// the background.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	cfg.defaults()
	if len(cfg.SourceAddr) == 0 || len(cfg.SourceAddr) > 6 {
		return nil, &Error{Class: Account, Op: "connect", Detail: "SourceAddr must be 1 to 6 characters"}
	}
	c := &Client{cfg: cfg, log: cfg.Logger.With(zap.String("gateway", cfg.Addr), zap.String("sp", cfg.SourceAddr)),
		reports: make(chan Report, 1024), repDone: make(chan struct{}), links: make([]*session, cfg.Conns),
		ready: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	for i := range c.links {
		s, err := c.connect(ctx)
		if err != nil {
			c.cancel()
			for _, s := range c.links[:i] {
				s.fail(errors.New("dial failed"))
			}
			return nil, err
		}
		c.links[i] = s
	}
	go c.deliverReports()
	for i, s := range c.links {
		c.wg.Add(1)
		go c.keep(i, s)
	}
	return c, nil
}

// Connects is how many links were established so far (a reconnect counts).
func (c *Client) Connects() int64 { return c.connects.Load() }

// keep runs link i: serve the session until it ends, then dial again with backoff, until Close.
func (c *Client) keep(i int, s *session) {
	defer c.wg.Done()
	wait := c.cfg.ReconnectMin
	for {
		if s != nil {
			c.publish(i, s)
			err := s.serve()
			c.publish(i, nil)
			if c.ctx.Err() != nil {
				return
			}
			c.log.Warn("cmpp link lost; dialling again", zap.Int("link", i), zap.Error(err))
			wait = c.cfg.ReconnectMin
		}
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(wait):
		}
		var err error
		if s, err = c.connect(c.ctx); err != nil {
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
			c.log.Warn("cmpp dial failed", zap.Int("link", i), zap.Duration("retry_in", wait), zap.Error(err))
			wait = min(2*wait, c.cfg.ReconnectMax)
		}
	}
}

// publish makes s link i's session (nil: down) and wakes submits waiting for a link.
func (c *Client) publish(i int, s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.links[i] = s
	if s != nil {
		c.lastErr = nil
		close(c.ready)
		c.ready = make(chan struct{})
	}
}

// pick is a live session, preferring one with a free window slot, round robin.
func (c *Client) pick() (*session, chan struct{}, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, nil, &Error{Class: Transient, Op: "submit", Detail: "client closed"}
	}
	var busy *session
	for k := range c.links {
		s := c.links[(c.rr+k)%len(c.links)]
		if s == nil {
			continue
		}
		if busy == nil {
			busy = s
		}
		if len(s.slots) < cap(s.slots) {
			c.rr = (c.rr + k + 1) % len(c.links)
			return s, nil, nil
		}
	}
	if busy != nil {
		c.rr = (c.rr + 1) % len(c.links)
		return busy, nil, nil
	}
	return nil, c.ready, c.lastErr
}

// Submit sends sub (one SUBMIT per segment, on one link, each waiting for its SUBMIT_RESP) and
// returns the gateway's Msg_Ids, one per segment. On error it returns the Msg_Ids of the segments
// accepted before it (a long text may be partly sent) and an *Error whose Class says what to do;
// a submit in flight when its link drops fails Transient, never reported as accepted.
func (c *Client) Submit(ctx context.Context, sub Submission) ([]uint64, error) {
	dest, ok := NationalNumber(sub.Phone)
	if !ok {
		return nil, &Error{Class: Permanent, Op: "submit", Detail: "not a mainland mobile number: " + pii.MaskPhone(sub.Phone)}
	}
	segs, udhi, err := SplitUCS2(sub.Text, byte(c.ref.Add(1)))
	if err != nil {
		return nil, &Error{Class: Permanent, Op: "submit", Detail: err.Error()}
	}
	wait, cancel := context.WithTimeout(ctx, c.cfg.SubmitTimeout)
	defer cancel()
	s, err := c.link(wait)
	if err != nil {
		return nil, err
	}
	pdu := Submit{PkTotal: uint8(len(segs)), RegisteredDelivery: 1, MsgLevel: 1, ServiceID: or(sub.ServiceID, c.cfg.ServiceID),
		FeeUserType: 2, MsgFmt: FmtUCS2, MsgSrc: c.cfg.SourceAddr, FeeType: "01", FeeCode: "000000",
		SrcID: or(sub.SrcID, c.cfg.SrcID), DestTerminalIDs: []string{dest}}
	if udhi {
		pdu.TPUDHI = 1
	}
	ids := make([]uint64, 0, len(segs))
	for i, seg := range segs {
		pdu.PkNumber, pdu.Content = uint8(i+1), seg
		id, err := s.submit(ctx, &pdu)
		if err != nil {
			c.log.Info("cmpp submit failed", zap.String("message_id", sub.ID), zap.String("phone", pii.MaskPhone(sub.Phone)),
				zap.Int("segment", i+1), zap.Int("segments", len(segs)), zap.Error(err))
			return ids, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// link waits for a live session until ctx ends.
func (c *Client) link(ctx context.Context) (*session, error) {
	for {
		s, ready, lastErr := c.pick()
		if s != nil || ready == nil {
			return s, lastErr
		}
		select {
		case <-ready:
		case <-ctx.Done():
			e := &Error{Class: Transient, Op: "submit", Detail: "no link to the gateway"}
			if lastErr != nil {
				e.Class, e.Detail = ClassOf(lastErr), "no link to the gateway: "+lastErr.Error()
			}
			return nil, e
		}
	}
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// deliverReports hands reports to OnReport, one at a time, until Close.
func (c *Client) deliverReports() {
	defer close(c.repDone)
	for r := range c.reports {
		if c.cfg.OnReport != nil {
			c.cfg.OnReport(r)
		}
	}
}

// Close sends TERMINATE on every link, waits briefly for the answers, and stops; submits still
// in flight fail Transient.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	links := append([]*session(nil), c.links...)
	c.mu.Unlock()
	for _, s := range links {
		if s != nil {
			s.terminate()
		}
	}
	c.cancel()
	for _, s := range links {
		if s != nil {
			s.fail(errors.New("client closed"))
		}
	}
	c.wg.Wait()
	close(c.reports)
	<-c.repDone
	return nil
}

// String names the client in logs.
func (c *Client) String() string { return fmt.Sprintf("cmpp %s@%s", c.cfg.SourceAddr, c.cfg.Addr) }
