package cmpp

import (
	"bufio"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// session is one authenticated link; it dies once (fail) and is replaced by a new one.
type session struct {
	c        *Client
	nc       net.Conn
	r        *bufio.Reader
	slots    chan struct{} // window: one token per unacknowledged submit
	seq      atomic.Uint32
	lastRecv atomic.Int64 // unix nanos of the last PDU received
	done     chan struct{}
	termResp chan struct{}

	wmu sync.Mutex // one PDU written at a time

	mu      sync.Mutex
	pending map[uint32]chan result
	err     error // why it died
}

type result struct {
	id  uint64
	err error
}

// connect dials the gateway and logs in: CONNECT, then a CONNECT_RESP whose Status is 0 and whose
// AuthenticatorISMG proves the gateway knows the secret.
func (c *Client) connect(ctx context.Context) (*session, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.DialTimeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", c.cfg.Addr)
	if err != nil {
		return nil, &Error{Class: Transient, Op: "connect", Detail: err.Error()}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	s := &session{c: c, nc: nc, r: bufio.NewReaderSize(nc, 8192), slots: make(chan struct{}, c.cfg.Window),
		done: make(chan struct{}), termResp: make(chan struct{}), pending: map[uint32]chan result{}}
	ts := Timestamp(c.cfg.Clock.Now())
	auth := AuthenticatorSource(c.cfg.SourceAddr, c.cfg.Secret, ts)
	seq := s.nextSeq()
	if err := s.login(Connect{SourceAddr: c.cfg.SourceAddr, Authenticator: auth, Version: Version, Timestamp: ts}, seq); err != nil {
		_ = nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	s.lastRecv.Store(time.Now().UnixNano())
	c.connects.Add(1)
	c.log.Info("cmpp link up", zap.String("local", nc.LocalAddr().String()))
	return s, nil
}

func (s *session) login(req Connect, seq uint32) error {
	fail := func(detail string) error { return &Error{Class: Transient, Op: "connect", Detail: detail} }
	if _, err := s.nc.Write(req.Marshal(seq)); err != nil {
		return fail(err.Error())
	}
	h, body, err := ReadPDU(s.r)
	if err != nil {
		return fail("no CONNECT_RESP: " + err.Error())
	}
	if h.Command != CmdConnectResp || h.Seq != seq {
		return fail(fmt.Sprintf("expected CONNECT_RESP to %d, got command %#x seq %d", seq, h.Command, h.Seq))
	}
	resp, err := ParseConnectResp(body)
	if err != nil {
		return fail("CONNECT_RESP: " + err.Error())
	}
	if resp.Status != 0 {
		return connectError(resp.Status)
	}
	want4 := AuthenticatorISMG(0, req.Authenticator, s.c.cfg.Secret)
	want1 := authenticatorISMG1(0, req.Authenticator, s.c.cfg.Secret)
	if subtle.ConstantTimeCompare(resp.Authenticator[:], want4[:]) != 1 &&
		subtle.ConstantTimeCompare(resp.Authenticator[:], want1[:]) != 1 {
		return &Error{Class: Account, Op: "connect", Detail: "AuthenticatorISMG does not match: the gateway does not know our secret"}
	}
	return nil
}

func (s *session) nextSeq() uint32 {
	for {
		if v := s.seq.Add(1); v != 0 {
			return v
		}
	}
}

func (s *session) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = s.nc.SetWriteDeadline(time.Now().Add(s.c.cfg.SubmitTimeout))
	_, err := s.nc.Write(b)
	return err
}

// fail ends the session once: the socket closes and every submit waiting for an answer fails
// Transient.
func (s *session) fail(cause error) {
	s.mu.Lock()
	if s.err != nil {
		s.mu.Unlock()
		return
	}
	s.err = cause
	pending := s.pending
	s.pending = nil
	close(s.done)
	s.mu.Unlock()
	_ = s.nc.Close()
	for _, ch := range pending {
		ch <- result{err: &Error{Class: Transient, Op: "submit", Detail: "link lost before SUBMIT_RESP: " + cause.Error()}}
	}
}

// submit sends one SUBMIT and waits for its SUBMIT_RESP, holding a window slot meanwhile (the slot
// is freed by the answer or the link's end, not by the caller giving up).
func (s *session) submit(ctx context.Context, p *Submit) (uint64, error) {
	lost := func() error {
		s.mu.Lock()
		defer s.mu.Unlock()
		return &Error{Class: Transient, Op: "submit", Detail: "link lost: " + s.err.Error()}
	}
	abandoned := func() error {
		return &Error{Class: Transient, Op: "submit", Detail: "abandoned by the caller: " + context.Cause(ctx).Error()}
	}
	timer := time.NewTimer(s.c.cfg.SubmitTimeout)
	defer timer.Stop()
	select {
	case s.slots <- struct{}{}:
	case <-s.done:
		return 0, lost()
	case <-ctx.Done():
		return 0, abandoned()
	case <-timer.C:
		return 0, &Error{Class: Transient, Op: "submit", Detail: "no window slot free in time"}
	}
	seq := s.nextSeq()
	ch := make(chan result, 1)
	s.mu.Lock()
	if s.pending == nil {
		s.mu.Unlock()
		return 0, lost()
	}
	s.pending[seq] = ch
	s.mu.Unlock()
	if err := s.write(p.Marshal(seq)); err != nil {
		s.fail(fmt.Errorf("write: %w", err))
	}
	timer.Reset(s.c.cfg.SubmitTimeout)
	select {
	case r := <-ch:
		return r.id, r.err
	case <-ctx.Done():
		return 0, abandoned()
	case <-timer.C:
		// A gateway that sits on a submit this long is not to be trusted with more.
		s.fail(errors.New("no SUBMIT_RESP in time"))
		if r := <-ch; r.err == nil {
			return r.id, nil
		}
		return 0, &Error{Class: Transient, Op: "submit", Detail: "no SUBMIT_RESP in time"}
	}
}

// serve reads the link until it dies and answers what the gateway sends; the heartbeat runs
// beside it.
func (s *session) serve() error {
	hb := make(chan struct{})
	go func() {
		defer close(hb)
		s.heartbeat()
	}()
	err := s.read()
	s.fail(err)
	<-hb
	return err
}

func (s *session) read() error {
	for {
		h, body, err := ReadPDU(s.r)
		if err != nil {
			select {
			case <-s.done:
				s.mu.Lock()
				defer s.mu.Unlock()
				return s.err
			default:
			}
			return fmt.Errorf("read: %w", err)
		}
		s.lastRecv.Store(time.Now().UnixNano())
		switch h.Command {
		case CmdSubmitResp:
			r, err := ParseResp(body)
			if err != nil {
				return fmt.Errorf("SUBMIT_RESP: %w", err)
			}
			s.answer(h.Seq, result{id: r.MsgID, err: ResultError(r.Result, s.c.cfg.ResultClasses)})
		case CmdDeliver:
			if err := s.deliver(h.Seq, body); err != nil {
				return err
			}
		case CmdActiveTest:
			if err := s.write(ActiveTestResp(h.Seq)); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		case CmdActiveTestResp:
		case CmdTerminate:
			_ = s.write(Empty(CmdTerminateResp, h.Seq))
			return errors.New("gateway sent TERMINATE")
		case CmdTerminateResp:
			close(s.termResp)
			return errors.New("terminated")
		default:
			s.c.log.Debug("cmpp PDU ignored", zap.Uint32("command", h.Command))
		}
	}
}

// answer hands a SUBMIT_RESP to its submit and frees the slot; an answer to nothing (a submit
// that was failed already) is dropped.
func (s *session) answer(seq uint32, r result) {
	s.mu.Lock()
	ch, ok := s.pending[seq]
	delete(s.pending, seq)
	s.mu.Unlock()
	if !ok {
		return
	}
	<-s.slots
	ch <- r
}

// deliver answers a DELIVER and passes a status report on; a mobile-originated message is
// acknowledged and dropped (its text is never logged).
func (s *session) deliver(seq uint32, body []byte) error {
	m, err := ParseDeliver(body)
	if err != nil {
		return fmt.Errorf("DELIVER: %w", err)
	}
	var rep StatusReport
	res := uint32(0)
	if m.RegisteredDelivery == 1 {
		if rep, err = ParseStatusReport(m.Content); err != nil {
			res = 1 // message structure error
		}
	}
	if err := s.write(Resp{MsgID: m.MsgID, Result: res}.Marshal(CmdDeliverResp, seq)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if m.RegisteredDelivery == 1 && res == 0 {
		s.c.reports <- Report{MsgID: rep.MsgID, Stat: rep.Stat, SubmitTime: ReportTime(rep.SubmitTime),
			DoneTime: ReportTime(rep.DoneTime), Phone: E164(rep.DestTerminalID), SMSCSequence: rep.SMSCSequence}
	}
	return nil
}

// heartbeat sends ACTIVE_TEST when the link has been silent for Heartbeat, and declares the
// gateway dead after HeartbeatMisses unanswered ones.
func (s *session) heartbeat() {
	t := time.NewTicker(s.c.cfg.Heartbeat)
	defer t.Stop()
	probes := 0
	for {
		select {
		case <-s.done:
			return
		case <-s.c.ctx.Done():
			s.fail(errors.New("client closed"))
			return
		case now := <-t.C:
			if now.Sub(time.Unix(0, s.lastRecv.Load())) < s.c.cfg.Heartbeat {
				probes = 0
				continue
			}
			if probes >= s.c.cfg.HeartbeatMisses {
				s.fail(fmt.Errorf("gateway dead: %d ACTIVE_TEST unanswered", probes))
				return
			}
			probes++
			if err := s.write(Empty(CmdActiveTest, s.nextSeq())); err != nil {
				s.fail(fmt.Errorf("write: %w", err))
				return
			}
		}
	}
}

// terminate asks the gateway to end the link and waits a moment for TERMINATE_RESP.
func (s *session) terminate() {
	if err := s.write(Empty(CmdTerminate, s.nextSeq())); err != nil {
		return
	}
	select {
	case <-s.termResp:
	case <-s.done:
	case <-time.After(time.Second):
	}
}
