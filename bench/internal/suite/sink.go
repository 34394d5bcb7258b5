package suite

import (
	"encoding/json"
	"net"
	"net/http"
	"regexp"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Post is one message the SMS gateway received.
type Post struct {
	MessageID string `json:"message_id"`
	Phone     string `json:"phone"`
	Text      string `json:"text"`
	Sender    string `json:"sender"`
}

var codeRE = regexp.MustCompile(`\d{6}`)

// Sink is an SMS gateway for the webhook provider: it accepts every POST (202) and keeps, per phone,
// the code of the latest message, and counts distinct message ids. It serves one message per POST
// at URL and many at BatchURL (the webhook's batch mode, --webhook-batch-url), each message of a
// batch recorded as if it had come in a POST of its own.
type Sink struct {
	URL      string
	BatchURL string

	srv      *http.Server
	mu       sync.Mutex
	codes    map[string]string // phone -> latest code
	seen     map[string]struct{}
	byID     map[string][]string // message id -> distinct codes received under it
	byPhone  map[string][]string // phone -> distinct message ids, in arrival order
	posts    atomic.Int64        // messages received including repeats (a batch counts each of its messages)
	batches  atomic.Int64        // batch POSTs accepted
	distinct atomic.Int64
	first    atomic.Int64 // unix nanos of the first distinct message since Reset
	last     atomic.Int64 // unix nanos of the latest distinct message
	conns    atomic.Int64 // TCP connections accepted
	// Fail, when set, answers 503 to every POST, batch or not (for fault drills).
	Fail atomic.Bool
}

// NewSink starts the gateway on a free loopback port.
func NewSink() (*Sink, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + l.Addr().String()
	s := &Sink{URL: base + "/sms", BatchURL: base + batchPath, codes: map[string]string{}, seen: map[string]struct{}{},
		byID: map[string][]string{}, byPhone: map[string][]string{}}
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 5 * time.Second, ConnState: func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}}
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// batchPath is the path of the batch endpoint; every other path takes one message.
const batchPath = "/sms/batch"

// BatchItem is one message's answer in a batch reply.
type BatchItem struct {
	MessageID string `json:"message_id"`
	Accepted  bool   `json:"accepted"`
	Error     string `json:"error,omitempty"`
}

func (s *Sink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == batchPath {
		s.serveBatch(w, r)
		return
	}
	var p Post
	if err := json.NewDecoder(r.Body).Decode(&p); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.Fail.Load() {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	if id := r.Header.Get("Idempotency-Key"); id != "" {
		p.MessageID = id
	}
	s.record(p)
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write([]byte(`{"accepted":true}`))
}

// serveBatch takes {"messages":[Post,...]}: 503 for the whole batch under Fail, else each message
// recorded as a single POST would be (its message_id is its idempotency key) and accepted.
func (s *Sink) serveBatch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Messages []Post `json:"messages"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.Fail.Load() {
		http.Error(w, "unavailable", http.StatusServiceUnavailable)
		return
	}
	s.batches.Add(1)
	res := struct {
		Results []BatchItem `json:"results"`
	}{Results: make([]BatchItem, len(req.Messages))}
	for i, p := range req.Messages {
		s.record(p)
		res.Results[i] = BatchItem{MessageID: p.MessageID, Accepted: true}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(res)
}

// record counts one received message: a repeat of a message id counts in Posts, not in Distinct.
func (s *Sink) record(p Post) {
	s.posts.Add(1)
	now := time.Now().UnixNano()
	s.mu.Lock()
	_, dup := s.seen[p.MessageID]
	code := codeRE.FindString(p.Text)
	if !dup {
		s.seen[p.MessageID] = struct{}{}
		s.codes[p.Phone] = code
		s.byPhone[p.Phone] = append(s.byPhone[p.Phone], p.MessageID)
	}
	if !slices.Contains(s.byID[p.MessageID], code) {
		s.byID[p.MessageID] = append(s.byID[p.MessageID], code)
	}
	s.mu.Unlock()
	if !dup {
		s.distinct.Add(1)
		s.first.CompareAndSwap(0, now)
		s.last.Store(now)
	}
}

// Code returns the latest code sent to phone (E.164).
func (s *Sink) Code(phone string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[phone]
	return c, ok
}

// MessageIDs returns the distinct message ids phone received, in arrival order.
func (s *Sink) MessageIDs(phone string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.byPhone[phone])
}

// Codes returns the distinct codes that arrived under one message id (more than one is a duplicate
// send with a different text, which the idempotency key forbids).
func (s *Sink) Codes(messageID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.byID[messageID])
}

// Distinct is how many distinct message ids arrived; Posts counts repeats too (each message of a
// batch counts as one post); Batches is how many batch POSTs were accepted.
func (s *Sink) Distinct() int64 { return s.distinct.Load() }
func (s *Sink) Posts() int64    { return s.posts.Load() }
func (s *Sink) Batches() int64  { return s.batches.Load() }

// Conns is how many TCP connections the gateway accepted.
func (s *Sink) Conns() int64 { return s.conns.Load() }

// Window returns the arrival times of the first and latest distinct message.
func (s *Sink) Window() (first, last time.Time) {
	return time.Unix(0, s.first.Load()), time.Unix(0, s.last.Load())
}

// WaitDistinct waits until at least n distinct messages arrived, or limit passes; it reports success.
func (s *Sink) WaitDistinct(n int64, limit time.Duration) bool {
	end := time.Now().Add(limit)
	for time.Now().Before(end) {
		if s.Distinct() >= n {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s.Distinct() >= n
}

// Close stops the gateway.
func (s *Sink) Close() error { return s.srv.Close() }
