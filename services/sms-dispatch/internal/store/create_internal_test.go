package store

import (
	"context"
	"testing"
	"time"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"

	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/storetest"
)

// A repeat that its own batch supersedes is answered as stored after the batch: FAILED superseded,
// its text wiped, not as the statement's snapshot saw it before its own writes.
func TestCreateAnswersARepeatItsBatchSuperseded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	s := New(pgtest.NewSchema(t, "sms", Migrations), clock.NewFake(now), storetest.SealKeys())
	ctx := context.Background()
	msg := func(id string, seq int32) domain.Message {
		m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: "+8613800000000", Template: domain.TemplateVerificationCode,
			Params: map[string]string{"code": "123456"}, ExpireAt: now.Add(time.Hour), OrderID: "o1", Sequence: seq}, "ICP备案", now)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	if _, created, err := s.Create(ctx, msg("m-r", 1)); err != nil || !created {
		t.Fatalf("first create: %v, %v", created, err)
	}
	res, err := s.createAll(ctx, []domain.Message{msg("m-r", 1), msg("m-n", 2)}, false)
	if err != nil {
		t.Fatal(err)
	}
	if r := res[0]; r.Err != nil || r.Value.created || r.Value.msg.State != domain.StateFailed ||
		r.Value.msg.LastError != domain.ErrorSuperseded || r.Value.msg.Body != "" {
		t.Fatalf("repeat answered %+v, %v; want FAILED superseded, wiped, not created", r.Value.msg, r.Err)
	}
	if r := res[1]; r.Err != nil || !r.Value.created || r.Value.msg.State != domain.StateQueued {
		t.Fatalf("new message answered %+v, %v; want created QUEUED", r.Value.msg, r.Err)
	}
	if got, err := s.Get(ctx, "m-r"); err != nil || got.State != domain.StateFailed {
		t.Fatalf("stored m-r = %+v, %v", got, err)
	}
}
