package service_test

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/pkg/seal"
	"github.com/icpverify/icpverify/pkg/service"
)

const (
	keyA = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	keyB = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
)

func parse(t *testing.T, args ...string) (service.SealKeys, config.Common) {
	t.Helper()
	f := config.NewFlags("test")
	common := config.RegisterCommon(f, "127.0.0.1:0", "test")
	k := service.RegisterSealKeys(f, "test secrets")
	if err := f.Parse(args); err != nil {
		t.Fatal(err)
	}
	return k, common
}

func TestSealKeysCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string // "" for no error
	}{
		{"postgres without keys", nil, `--seal-keys (SEAL_KEYS) is required with --store=postgres`},
		{"recipe", nil, `SEAL_KEYS="s1:$(openssl rand -hex 32)"`},
		{"memory without keys", []string{"--store", "memory"}, ""},
		{"postgres with a key", []string{"--seal-keys", "s1:" + keyA}, ""},
		{"short key", []string{"--seal-keys", "s1:abcd"}, "want exactly 32"},
		{"bad key on memory too", []string{"--store", "memory", "--seal-keys", "s1"}, "want kid:hexkey"},
	} {
		k, common := parse(t, tc.args...)
		err := k.Check(common)
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: Check = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestSealKeysPlaceholder(t *testing.T) {
	for _, tc := range []struct {
		spec        string
		placeholder bool
	}{
		{"s1:" + keyA, false},
		{"s2:" + keyB + ",s1:" + keyA, false},
		{"s1:" + strings.Repeat("0", 64), true},
		// hex of "example seal key - replace me!!!": a placeholder once decoded
		{"s1:6578616d706c65207365616c206b6579202d207265706c616365206d65212121", true},
		{"s2:" + keyB + ",s1:" + strings.Repeat("ab", 32), false},
		{"s2:" + keyB + ",s1:" + strings.Repeat("a", 64), true},
	} {
		k, _ := parse(t, "--seal-keys", tc.spec)
		open := k.OpenDefaults()
		if got := len(open) == 1 && open[0].Flag == "--seal-keys"; got != tc.placeholder {
			t.Errorf("OpenDefaults(%q) = %v, want placeholder %v", tc.spec, open, tc.placeholder)
		}
	}
}

// The key ids are logged, never the keys; with none a random key is used, loudly.
func TestSealKeysKeyring(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	k, _ := parse(t, "--seal-keys", "s2:"+keyB+",s1:"+keyA)
	keys, err := k.Keyring(zap.New(core))
	if err != nil || keys.ActiveKeyID() != "s2" {
		t.Fatalf("Keyring = %v, %v", keys, err)
	}
	entries := logs.All()
	if len(entries) != 1 || entries[0].ContextMap()["seal_key_id"] != "s2" {
		t.Fatalf("logged %v, want the active key id", entries)
	}
	for _, e := range entries {
		for _, v := range e.ContextMap() {
			if s, ok := v.(string); ok && (strings.Contains(s, keyA[8:40]) || strings.Contains(s, keyB[8:40])) {
				t.Fatalf("a key was logged: %v", e)
			}
		}
	}

	core, logs = observer.New(zapcore.InfoLevel)
	k, _ = parse(t, "--store", "memory")
	keys, err = k.Keyring(zap.New(core))
	if err != nil || keys.ActiveKeyID() != seal.EphemeralKeyID {
		t.Fatalf("Keyring without keys = %v, %v", keys, err)
	}
	if w := logs.FilterLevelExact(zapcore.WarnLevel).All(); len(w) != 1 || !strings.Contains(w[0].Message, "ephemeral") {
		t.Fatalf("no loud warning about the ephemeral key: %v", logs.All())
	}
}
