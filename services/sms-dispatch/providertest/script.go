// Package providertest holds local fakes of the SMS providers' gateways, for the provider tests,
// the dispatcher's and the e2e suite: each is an httptest server that speaks the provider's real
// protocol, verifies every request's signature the way the provider does (computing it again from
// what arrived, with the same code the provider signs with) and answers a bad one with the
// provider's own error body, records the messages it accepted, and can be scripted to refuse with
// any of the provider's codes (the next N requests, or every request to one phone).
package providertest

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"sync"
)

// Accepted is one message a fake accepted.
type Accepted struct {
	// MessageID is our message id as the request carried it (aliyun OutId, tencent SessionContext).
	MessageID string
	// Phone is E.164.
	Phone string
	// SignName and Template (aliyun TemplateCode, tencent TemplateId) as sent.
	SignName, Template string
	// Params are the template's variables: aliyun's names, tencent's "1", "2", … by position.
	Params map[string]string
	// Ordered holds the parameter values in the template's order (tencent), or sorted by name (aliyun).
	Ordered []string
	// ProviderID is the fake's id of the message as it answered it (aliyun BizId, tencent SerialNo).
	ProviderID string
}

var sixDigits = regexp.MustCompile(`^\d{6}$`)

// Code is the first parameter that is a 6-digit code.
func (a Accepted) Code() string {
	for _, v := range a.Ordered {
		if sixDigits.MatchString(v) {
			return v
		}
	}
	return ""
}

// script is what a fake answers instead of acceptance.
type script struct {
	mu      sync.Mutex
	next    []string          // codes for the next requests, one each
	byPhone map[string]string // E.164 -> code, for every request to that phone
}

func (s *script) failNext(n int, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		s.next = append(s.next, code)
	}
}

func (s *script) failPhone(phone, code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byPhone == nil {
		s.byPhone = map[string]string{}
	}
	if code == "" {
		delete(s.byPhone, phone)
	} else {
		s.byPhone[phone] = code
	}
}

// take returns the code scripted for a request to phone ("" to accept).
func (s *script) take(phone string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.byPhone[phone]; ok {
		return c
	}
	if len(s.next) > 0 {
		c := s.next[0]
		s.next = s.next[1:]
		return c
	}
	return ""
}

// record keeps the accepted messages.
type record struct {
	mu       sync.Mutex
	accepted []Accepted
	requests int
}

func (r *record) add(a Accepted) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.accepted = append(r.accepted, a)
}

func (r *record) count() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests++
}

// Accepted returns the messages accepted so far, oldest first.
func (r *record) Accepted() []Accepted {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Accepted(nil), r.accepted...)
}

// AcceptedCount is how many messages were accepted so far: Accepted's length without the copy, for
// a load generator that polls it.
func (r *record) AcceptedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.accepted)
}

// Requests is how many requests arrived (accepted, refused or rejected).
func (r *record) Requests() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.requests
}

func sha256Hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
