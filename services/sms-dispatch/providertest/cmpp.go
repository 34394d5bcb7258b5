package providertest

import (
	"bufio"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// CMPP is a fake ISMG (a carrier's CMPP 3.0 gateway) on a loopback TCP listener: it checks the
// login, acknowledges submits with fresh Msg_Ids, reassembles long texts, sends status reports,
// and can be scripted (refuse with a Result code, delay acks, drop a link mid-window, ignore
// heartbeats, hold reports back and release them duplicated or out of order).
//
// CMPP carries no id of ours: an Accepted's MessageID is the decimal Msg_Id of the message's first
// segment, SignName its Src_Id, Template its Service_Id, Params {"text": text}, Ordered the
// 6-digit runs in the text (so Code works as for the other fakes).
type CMPP struct {
	record
	script
	ln net.Listener

	SourceAddr, Secret string
	// GatewayID is the ISMG code in the Msg_Ids it gives.
	GatewayID uint32
	// AnyLogin accepts every CONNECT from SourceAddr whatever its authenticator (an impostor
	// gateway: its AuthenticatorISMG, made with Secret, then proves nothing to the client).
	AnyLogin bool

	mu          sync.Mutex
	conns       map[*cmppConn]bool
	connects    int
	ackDelay    time.Duration
	dropAfter   int // submits until the next link drop; 0 none
	deaf        bool
	idle        time.Duration
	maxUnacked  int
	submits     int
	msgSeq      uint16
	acked       map[uint64]int
	parts       map[string][][]byte
	partIDs     map[string][]uint64
	messages    []CMPPMessage
	repDelay    time.Duration
	repOff      bool
	stats       map[string]string // E.164 -> Stat
	hold        bool
	held        []cmppReport
	reportAcks  map[uint64]int
	deliverOf   map[uint64]uint64 // a DELIVER's own Msg_Id -> the reported Msg_Id
	probeAnswer int
	wg          sync.WaitGroup
}

// CMPPMessage is a text the fake accepted whole (every segment acknowledged).
type CMPPMessage struct {
	MsgIDs           []uint64 // one per segment, in segment order
	Phone            string   // E.164
	Text             string
	SrcID, ServiceID string
}

type cmppReport struct {
	c       *cmppConn
	msgID   uint64
	phone   string
	dest    string
	srcID   string
	stat    string
	submitT time.Time
}

type cmppConn struct {
	f       *CMPP
	nc      net.Conn
	wmu     sync.Mutex
	seq     uint32
	unacked int
	acks    chan cmppAck
	done    chan struct{}
	once    sync.Once
}

type cmppAck struct {
	due    time.Time
	seq    uint32
	result uint32
	sub    cmppSubmitted
}

// NewCMPP starts a fake gateway for one SP account; Close stops it.
func NewCMPP(sourceAddr, secret string) *CMPP {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	f := &CMPP{ln: ln, SourceAddr: sourceAddr, Secret: secret, GatewayID: 12345, conns: map[*cmppConn]bool{},
		acked: map[uint64]int{}, parts: map[string][][]byte{}, partIDs: map[string][]uint64{},
		stats: map[string]string{}, reportAcks: map[uint64]int{}, deliverOf: map[uint64]uint64{}}
	f.wg.Add(1)
	go f.accept()
	return f
}

// Addr is the gateway's host:port.
func (f *CMPP) Addr() string { return f.ln.Addr().String() }

// Close stops listening and drops every link.
func (f *CMPP) Close() {
	_ = f.ln.Close()
	f.DropLinks()
	f.wg.Wait()
}

// FailNext makes the next n submits answer Result code.
func (f *CMPP) FailNext(n int, result uint32) { f.failNext(n, strconv.Itoa(int(result))) }

// FailPhone makes every submit to phone (E.164) answer Result code; 0 accepts it again.
func (f *CMPP) FailPhone(phone string, result uint32) {
	if result == 0 {
		f.failPhone(phone, "")
	} else {
		f.failPhone(phone, strconv.Itoa(int(result)))
	}
}

// DelayAcks holds each SUBMIT_RESP back d after its SUBMIT arrived.
func (f *CMPP) DelayAcks(d time.Duration) { f.set(func() { f.ackDelay = d }) }

// DropAfter drops the link that receives the n-th submit from now, at once, leaving every submit
// it has not acknowledged unanswered.
func (f *CMPP) DropAfter(n int) { f.set(func() { f.dropAfter = n }) }

// IdleTimeout makes the gateway drop a link that sent nothing for d, as carriers do (0: never).
func (f *CMPP) IdleTimeout(d time.Duration) { f.set(func() { f.idle = d }) }

// Deaf makes the gateway ignore (true) or answer ACTIVE_TEST.
func (f *CMPP) Deaf(deaf bool) { f.set(func() { f.deaf = deaf }) }

// Reports sets the delay between a SUBMIT_RESP and its status report (default 0); off stops
// reports.
func (f *CMPP) Reports(delay time.Duration, off bool) {
	f.set(func() { f.repDelay, f.repOff = delay, off })
}

// ReportStat makes reports for phone say stat (UNDELIV, say); "" is DELIVRD again.
func (f *CMPP) ReportStat(phone, stat string) {
	f.set(func() {
		if stat == "" {
			delete(f.stats, phone)
		} else {
			f.stats[phone] = stat
		}
	})
}

// HoldReports keeps reports back until ReleaseReports.
func (f *CMPP) HoldReports() { f.set(func() { f.hold = true }) }

// ReleaseReports sends the held reports, newest first when reverse, each twice when dup, and
// stops holding.
func (f *CMPP) ReleaseReports(reverse, dup bool) {
	f.mu.Lock()
	held := f.held
	f.held, f.hold = nil, false
	f.mu.Unlock()
	if reverse {
		for i, j := 0, len(held)-1; i < j; i, j = i+1, j-1 {
			held[i], held[j] = held[j], held[i]
		}
	}
	for _, r := range held {
		f.sendReport(r)
		if dup {
			f.sendReport(r)
		}
	}
}

// DropLinks closes every link now.
func (f *CMPP) DropLinks() {
	f.mu.Lock()
	conns := make([]*cmppConn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

// Probe sends ACTIVE_TEST on every link; ProbeAnswers counts the answers.
func (f *CMPP) Probe() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for c := range f.conns {
		c.write(cmppBytes(cmppActiveTest, c.nextSeq()))
	}
}

func (f *CMPP) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

func (f *CMPP) get(fn func() int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn()
}

// ProbeAnswers is how many ACTIVE_TEST_RESP came back to Probe.
func (f *CMPP) ProbeAnswers() int { return f.get(func() int { return f.probeAnswer }) }

// Connects is how many logins succeeded.
func (f *CMPP) Connects() int { return f.get(func() int { return f.connects }) }

// Links is how many links are open now.
func (f *CMPP) Links() int { return f.get(func() int { return len(f.conns) }) }

// MaxUnacked is the most submits one link ever had unacknowledged.
func (f *CMPP) MaxUnacked() int { return f.get(func() int { return f.maxUnacked }) }

// Submits is how many SUBMIT PDUs arrived (segments, refused ones included).
func (f *CMPP) Submits() int { return f.get(func() int { return f.submits }) }

// Acked is how many times each Msg_Id was acknowledged with Result 0.
func (f *CMPP) Acked() map[uint64]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[uint64]int, len(f.acked))
	for k, v := range f.acked {
		out[k] = v
	}
	return out
}

// ReportAcks is how many DELIVER_RESPs (Result 0, naming the DELIVER's own Msg_Id) came back per
// reported Msg_Id.
func (f *CMPP) ReportAcks() map[uint64]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make(map[uint64]int, len(f.reportAcks))
	for k, v := range f.reportAcks {
		out[k] = v
	}
	return out
}

// Messages are the texts accepted whole, oldest first.
func (f *CMPP) Messages() []CMPPMessage {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CMPPMessage(nil), f.messages...)
}

func (f *CMPP) accept() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		c := &cmppConn{f: f, nc: nc, acks: make(chan cmppAck, 4096), done: make(chan struct{})}
		f.wg.Add(2)
		go c.serve()
		go c.ackLoop()
	}
}

func (c *cmppConn) nextSeq() uint32 {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.seq++
	return c.seq
}

func (c *cmppConn) write(b []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		go c.close()
	}
}

func (c *cmppConn) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.nc.Close()
		c.f.mu.Lock()
		delete(c.f.conns, c)
		c.f.mu.Unlock()
	})
}

var sixDigitRun = regexp.MustCompile(`\d{6}`)

func (c *cmppConn) serve() {
	defer c.f.wg.Done()
	defer c.close()
	f := c.f
	r := bufio.NewReader(c.nc)
	_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := readCMPP(r)
	if err != nil || p.cmd != cmppConnect {
		return
	}
	status, auth := cmppLogin(p.body, f.SourceAddr, f.Secret)
	if status == 3 && f.AnyLogin {
		status = 0
	}
	if status == 0 {
		// Counted before the answer goes out, so a client that has logged in always finds itself counted.
		f.mu.Lock()
		f.connects++
		f.conns[c] = true
		f.mu.Unlock()
	}
	c.write(cmppConnectResp(p.seq, status, auth, f.Secret))
	if status != 0 {
		return
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	for {
		if idle := time.Duration(f.get(func() int { return int(f.idle) })); idle > 0 {
			_ = c.nc.SetReadDeadline(time.Now().Add(idle))
		} else {
			_ = c.nc.SetReadDeadline(time.Time{})
		}
		p, err := readCMPP(r)
		if err != nil {
			return
		}
		switch p.cmd {
		case cmppSubmit:
			if !c.submit(p) {
				return
			}
		case cmppActiveTest:
			f.mu.Lock()
			deaf := f.deaf
			f.mu.Unlock()
			if !deaf {
				c.write(cmppBytes(cmppActiveTest|cmppResp, p.seq, []byte{0}))
			}
		case cmppActiveTest | cmppResp:
			f.set(func() { f.probeAnswer++ })
		case cmppDeliver | cmppResp:
			if len(p.body) == 12 && binary32(p.body[8:]) == 0 {
				id := binary64(p.body[:8])
				f.set(func() {
					if reported, ok := f.deliverOf[id]; ok {
						delete(f.deliverOf, id)
						f.reportAcks[reported]++
					}
				})
			}
		case cmppTerminate:
			c.write(cmppBytes(cmppTerminate|cmppResp, p.seq))
			return
		}
	}
}

// submit takes one SUBMIT; false drops the link.
func (c *cmppConn) submit(p cmppPDU) bool {
	f := c.f
	sub, err := parseCMPPSubmit(p.body)
	result := uint32(0)
	switch {
	case err != nil:
		result = 1
	case sub.msgSrc != f.SourceAddr:
		result = 11
	case sub.srcID == "":
		result = 10
	case !mainlandNational.MatchString(sub.dest):
		result = 13
	case sub.fmt != 8 || sub.registered != 1 || len(sub.content) > 140 || sub.pkNumber == 0 || sub.pkNumber > sub.pkTotal:
		result = 1
	case sub.udhi == 1 && (len(sub.content) < 6 || sub.content[0] != 5 || sub.content[1] != 0 || sub.content[2] != 3 ||
		sub.content[4] != sub.pkTotal || sub.content[5] != sub.pkNumber):
		result = 1
	case sub.udhi == 0 && sub.pkTotal != 1:
		result = 1
	}
	if result == 0 {
		if code := f.take("+86" + sub.dest); code != "" {
			n, _ := strconv.Atoi(code)
			result = uint32(n)
		}
	}
	f.mu.Lock()
	f.submits++
	f.count()
	c.unacked++
	f.maxUnacked = max(f.maxUnacked, c.unacked)
	drop := false
	if f.dropAfter > 0 {
		f.dropAfter--
		drop = f.dropAfter == 0
	}
	due := time.Now().Add(f.ackDelay)
	f.mu.Unlock()
	if drop {
		return false
	}
	c.acks <- cmppAck{due: due, seq: p.seq, result: result, sub: sub}
	return true
}

var mainlandNational = regexp.MustCompile(`^1[3-9]\d{9}$`)

// ackLoop writes SUBMIT_RESPs in arrival order, each at its due time, and records what it
// acknowledged; a link's end leaves the rest unanswered.
func (c *cmppConn) ackLoop() {
	defer c.f.wg.Done()
	f := c.f
	for {
		var a cmppAck
		select {
		case <-c.done:
			return
		case a = <-c.acks:
		}
		if d := time.Until(a.due); d > 0 {
			select {
			case <-c.done:
				return
			case <-time.After(d):
			}
		}
		var id uint64
		var rep cmppReport
		var send bool
		var delay time.Duration
		f.mu.Lock()
		select {
		case <-c.done:
			f.mu.Unlock()
			return
		default:
		}
		if a.result == 0 {
			f.msgSeq++
			now := time.Now().In(time.FixedZone("CST", 8*3600))
			id = uint64(now.Month())<<60 | uint64(now.Day())<<55 | uint64(now.Hour())<<50 | uint64(now.Minute())<<44 |
				uint64(now.Second())<<38 | uint64(f.GatewayID&0x3fffff)<<16 | uint64(f.msgSeq)
			f.acked[id]++
			f.reassemble(a.sub, id)
			// The report is held (or scheduled) before the SUBMIT_RESP goes out: a client that saw
			// the Msg_Id and then calls ReleaseReports finds it held.
			rep = cmppReport{c: c, msgID: id, phone: "+86" + a.sub.dest, dest: a.sub.dest, srcID: a.sub.srcID, submitT: time.Now()}
			send, delay = f.reportLocked(&rep)
		}
		c.unacked--
		f.mu.Unlock()
		c.write(cmppBytes(cmppSubmit|cmppResp, a.seq, u64(id), u32(a.result)))
		switch {
		case send && delay > 0:
			time.AfterFunc(delay, func() { f.sendReport(rep) })
		case send:
			f.sendReport(rep)
		}
	}
}

// reassemble records a segment (f.mu held) and, once all are in, the message.
func (f *CMPP) reassemble(s cmppSubmitted, id uint64) {
	body, key := s.content, fmt.Sprintf("%s/%s", s.dest, s.srcID)
	total, seq := 1, 1
	if s.udhi == 1 {
		body = s.content[6:]
		key += fmt.Sprintf("/%d/%d", s.content[3], s.content[4])
		total, seq = int(s.content[4]), int(s.content[5])
	}
	if f.parts[key] == nil {
		f.parts[key], f.partIDs[key] = make([][]byte, total), make([]uint64, total)
	}
	f.parts[key][seq-1], f.partIDs[key][seq-1] = body, id
	var all []byte
	for _, p := range f.parts[key] {
		if p == nil {
			return
		}
		all = append(all, p...)
	}
	m := CMPPMessage{MsgIDs: f.partIDs[key], Phone: "+86" + s.dest, Text: ucs2Text(all), SrcID: s.srcID, ServiceID: s.serviceID}
	delete(f.parts, key)
	delete(f.partIDs, key)
	f.messages = append(f.messages, m)
	f.add(Accepted{MessageID: strconv.FormatUint(m.MsgIDs[0], 10), Phone: m.Phone,
		SignName: m.SrcID, Template: m.ServiceID, Params: map[string]string{"text": m.Text},
		Ordered: sixDigitRun.FindAllString(m.Text, -1)})
}

// reportLocked (f.mu held) sets r's stat and holds it, or tells to send it after delay; nothing
// when reports are off.
func (f *CMPP) reportLocked(r *cmppReport) (send bool, delay time.Duration) {
	if f.repOff {
		return false, 0
	}
	r.stat = "DELIVRD"
	if s, ok := f.stats[r.phone]; ok {
		r.stat = s
	}
	if f.hold {
		f.held = append(f.held, *r)
		return false, 0
	}
	return true, f.repDelay
}

// sendReport writes a DELIVER on the link the submit came by, or on another while that one is
// gone; with no link the report is lost, as a real gateway's would wait.
func (f *CMPP) sendReport(r cmppReport) {
	c := r.c
	f.mu.Lock()
	if !f.conns[c] {
		c = nil
		for other := range f.conns {
			c = other
			break
		}
	}
	f.msgSeq++
	deliverID := uint64(f.GatewayID&0x3fffff)<<16 | uint64(f.msgSeq)
	f.deliverOf[deliverID] = r.msgID
	f.mu.Unlock()
	if c == nil {
		return
	}
	st := r.submitT.In(time.FixedZone("CST", 8*3600))
	c.write(cmppDeliverReport(c.nextSeq(), deliverID, r.msgID, r.stat, st.Format("0601021504"),
		time.Now().In(st.Location()).Format("0601021504"), r.dest, r.srcID, uint32(r.msgID)))
}

func binary32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func binary64(b []byte) uint64 { return uint64(binary32(b))<<32 | uint64(binary32(b[4:])) }
