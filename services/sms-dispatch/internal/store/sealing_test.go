package store_test

import (
	"bytes"
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/icpverify/icpverify/pkg/clock"
	"github.com/icpverify/icpverify/pkg/pg"
	"github.com/icpverify/icpverify/pkg/pg/pgtest"
	"github.com/icpverify/icpverify/pkg/seal"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/domain"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store"
	"github.com/icpverify/icpverify/services/sms-dispatch/internal/store/storetest"
)

func codeMessage(t *testing.T, id, code string) domain.Message {
	t.Helper()
	m, err := domain.NewMessage(domain.SendInput{MessageID: id, Phone: "13812345678", Template: domain.TemplateVerificationCode,
		Params: map[string]string{"code": code}, ExpireAt: storetest.T0.Add(time.Hour), OrderID: "o-" + id, Sequence: 1},
		"ICP备案", storetest.T0)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// atRest is a message's row as stored.
type atRest struct {
	sealed []byte
	keyID  string
}

func stored(t *testing.T, pool *pgxpool.Pool, id string) atRest {
	t.Helper()
	var r atRest
	if err := pool.QueryRow(context.Background(), `SELECT sealed_text, key_id FROM messages WHERE message_id = $1`, id).
		Scan(&r.sealed, &r.keyID); err != nil {
		t.Fatal(err)
	}
	return r
}

// A queued message's text (body and params, both holding the code) is kept sealed with the active
// key, its id beside it; the store reads it back opened; it is wiped once sent.
func TestTextSealedAtRest(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewSchema(t, "sms", store.Migrations)
	s := store.New(pool, clock.NewFake(storetest.T0), storetest.SealKeys())
	if _, _, err := s.Create(ctx, codeMessage(t, "m1", "482913")); err != nil {
		t.Fatal(err)
	}
	r := stored(t, pool, "m1")
	if r.keyID != "s1" || len(r.sealed) == 0 || bytes.Contains(r.sealed, []byte("482913")) {
		t.Fatalf("queued text at rest: key %q, %q; want it sealed with s1", r.keyID, r.sealed)
	}
	if kid, err := seal.KeyID(r.sealed); err != nil || kid != "s1" {
		t.Errorf("sealed text names key %q (%v)", kid, err)
	}
	claimed, err := s.Claim(ctx, storetest.T0, time.Minute, 10)
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim = %v, %v", claimed, err)
	}
	if m := claimed[0]; !bytes.Contains([]byte(m.Body), []byte("482913")) || m.Params["code"] != "482913" {
		t.Fatalf("claimed message: body %q, params %v; want the text opened", m.Body, m.Params)
	}
	if ok, err := s.MarkSent(ctx, claimed[0], "webhook", storetest.T0, false); err != nil || !ok {
		t.Fatalf("MarkSent = %v, %v", ok, err)
	}
	if r := stored(t, pool, "m1"); r.sealed != nil || r.keyID != "" {
		t.Fatalf("sent text at rest: key %q, %d bytes; want it wiped", r.keyID, len(r.sealed))
	}
}

// Rotation: a store with the new key first and the old one kept reads the old key's texts and seals
// with the new one; a store without the old key reads none, so its dispatcher fails such a message.
func TestTextKeyRotation(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewSchema(t, "sms", store.Migrations)
	oldKeys := storetest.SealKeys()
	newKey := "s2:" + strings.Repeat("0f1e", 16)
	rotated, err := seal.Parse(newKey + ",s1:" + strings.Repeat("5a", 32))
	if err != nil {
		t.Fatal(err)
	}
	newOnly, err := seal.Parse(newKey)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.New(pool, clock.NewFake(storetest.T0), oldKeys).Create(ctx, codeMessage(t, "m-old", "111111")); err != nil {
		t.Fatal(err)
	}
	s := store.New(pool, clock.NewFake(storetest.T0), rotated)
	if _, _, err := s.Create(ctx, codeMessage(t, "m-new", "222222")); err != nil {
		t.Fatal(err)
	}
	if r := stored(t, pool, "m-new"); r.keyID != "s2" {
		t.Fatalf("a new text is sealed with %q, want the new key s2", r.keyID)
	}
	for id, code := range map[string]string{"m-old": "111111", "m-new": "222222"} {
		if m, err := s.Get(ctx, id); err != nil || m.Params["code"] != code {
			t.Errorf("rotated store reads %s as %v, %v", id, m.Params, err)
		}
	}
	m, err := store.New(pool, clock.NewFake(storetest.T0), newOnly).Get(ctx, "m-old")
	if err != nil || m.Body != "" || len(m.Params) != 0 {
		t.Fatalf("without the old key, m-old reads as %q %v, %v; want no text", m.Body, m.Params, err)
	}
}

// A sealed text copied into another message's row does not open there.
func TestTextBoundToItsMessage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool := pgtest.NewSchema(t, "sms", store.Migrations)
	s := store.New(pool, clock.NewFake(storetest.T0), storetest.SealKeys())
	for id, code := range map[string]string{"m1": "333333", "m2": "444444"} {
		if _, _, err := s.Create(ctx, codeMessage(t, id, code)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `UPDATE messages SET sealed_text = (SELECT sealed_text FROM messages WHERE message_id = 'm1')
		WHERE message_id = 'm2'`); err != nil {
		t.Fatal(err)
	}
	if m, err := s.Get(ctx, "m2"); err != nil || m.Body != "" || m.Params["code"] != "" {
		t.Fatalf("m2 with m1's sealed text reads as %q %v, %v; want no text", m.Body, m.Params, err)
	}
}

// Migration 0003 wipes the texts stored in the clear before it: a message still queued fails as one
// with no text, and no code is left in the table.
func TestSealedTextMigrationWipesPlainTexts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	before := fstest.MapFS{}
	err := fs.WalkDir(store.Migrations.FS, "migrations", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path >= "migrations/0003" {
			return err
		}
		data, err := fs.ReadFile(store.Migrations.FS, path)
		before[path] = &fstest.MapFile{Data: data}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	pool := pgtest.NewSchema(t, "sms", pg.Source{Name: store.Migrations.Name, FS: before})
	if _, err := pool.Exec(ctx, `INSERT INTO messages (message_id, phone, template, params, locale, body, state, next_attempt_at,
		expire_at, created_at) VALUES ('m-q', '+8613812345678', 'VERIFICATION_CODE', '{"code":"555555"}', 'zh-CN',
		'您的短信核验码为555555', 'QUEUED', now(), now() + interval '1 hour', now())`); err != nil {
		t.Fatal(err)
	}
	if err := pg.Migrate(ctx, pool, store.Migrations); err != nil {
		t.Fatal(err)
	}
	m, err := store.New(pool, clock.NewFake(storetest.T0), storetest.SealKeys()).Get(ctx, "m-q")
	if err != nil || m.State != domain.StateFailed || m.LastError != domain.ErrorNothingToSend || !m.Redacted || m.Body != "" {
		t.Fatalf("the queued plain message after the migration: %+v, %v; want FAILED, wiped", m, err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE messages::text LIKE '%555555%'`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows still hold the code (%v)", n, err)
	}
}
