package seal_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/icpverify/icpverify/pkg/seal"
)

const (
	hexA = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	hexB = "1f1e1d1c1b1a191817161514131211100f0e0d0c0b0a09080706050403020100"
)

func mustParse(t *testing.T, spec string) *seal.Keyring {
	t.Helper()
	k, err := seal.Parse(spec)
	if err != nil {
		t.Fatalf("Parse(%q): %v", spec, err)
	}
	return k
}

func TestSealOpen(t *testing.T) {
	k := mustParse(t, "k1:"+hexA)
	plain := []byte("您的短信核验码为123456")
	ad := []byte("messages/m-1")
	sealed, err := k.Seal(plain, ad)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("123456")) {
		t.Fatal("the sealed value holds the plaintext")
	}
	if len(sealed) != len(plain)+seal.Overhead+len("k1") {
		t.Errorf("sealed length %d, want %d", len(sealed), len(plain)+seal.Overhead+2)
	}
	if kid, err := seal.KeyID(sealed); err != nil || kid != "k1" {
		t.Errorf("KeyID = %q, %v; want k1", kid, err)
	}
	got, err := k.Open(sealed, ad)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	again, _ := k.Seal(plain, ad)
	if bytes.Equal(again, sealed) {
		t.Error("two seals of one plaintext are equal: the nonce is not fresh")
	}
	empty, err := k.Seal(nil, ad)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := k.Open(empty, ad); err != nil || len(got) != 0 {
		t.Errorf("empty plaintext: %q, %v", got, err)
	}
}

func TestRotation(t *testing.T) {
	old := mustParse(t, "k1:"+hexA)
	ad := []byte("outbox:SendMessage")
	byOld, _ := old.Seal([]byte("old"), ad)

	// The new key first, the old one kept: the new one seals, both open.
	rotated := mustParse(t, "k2:"+hexB+", k1:"+hexA)
	if rotated.ActiveKeyID() != "k2" || strings.Join(rotated.KeyIDs(), ",") != "k2,k1" {
		t.Fatalf("active %q, ids %v", rotated.ActiveKeyID(), rotated.KeyIDs())
	}
	if got, err := rotated.Open(byOld, ad); err != nil || string(got) != "old" {
		t.Fatalf("the rotated keyring does not open the old key's value: %q, %v", got, err)
	}
	byNew, _ := rotated.Seal([]byte("new"), ad)
	if kid, _ := seal.KeyID(byNew); kid != "k2" {
		t.Fatalf("sealed with %q, want the new key k2", kid)
	}
	// Only once the old key is dropped do its values stop opening, and they say why.
	_, err := mustParse(t, "k2:"+hexB).Open(byOld, ad)
	if !errors.Is(err, seal.ErrUnknownKey) || !strings.Contains(err.Error(), `"k1"`) {
		t.Fatalf("old value after the old key was dropped: %v, want ErrUnknownKey naming k1", err)
	}
	if _, err := old.Open(byNew, ad); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("the old keyring opening the new value: %v", err)
	}
}

func TestTamperAndWrongAD(t *testing.T) {
	k := mustParse(t, "k1:"+hexA)
	ad := []byte("messages/m-1")
	sealed, _ := k.Seal([]byte("code 123456"), ad)

	if _, err := k.Open(sealed, []byte("messages/m-2")); !errors.Is(err, seal.ErrTampered) {
		t.Errorf("moved to another row: %v, want ErrTampered", err)
	}
	if _, err := k.Open(sealed, nil); !errors.Is(err, seal.ErrTampered) {
		t.Errorf("opened without its associated data: %v, want ErrTampered", err)
	}
	for i := range sealed {
		bad := bytes.Clone(sealed)
		bad[i] ^= 0x01
		if _, err := k.Open(bad, ad); err == nil {
			t.Fatalf("a value with byte %d flipped opened", i)
		}
	}
	// The same key under another id: the header is authenticated, so a relabelled value fails.
	twin := mustParse(t, "k9:"+hexA)
	relabelled := append([]byte{1, 2, 'k', '9'}, sealed[4:]...)
	if _, err := twin.Open(relabelled, ad); !errors.Is(err, seal.ErrTampered) {
		t.Errorf("relabelled key id: %v, want ErrTampered", err)
	}
	// Another key that claims the same id does not open it either.
	other := mustParse(t, "k1:"+hexB)
	if _, err := other.Open(sealed, ad); !errors.Is(err, seal.ErrTampered) {
		t.Errorf("another key named k1: %v, want ErrTampered", err)
	}
	for _, bad := range [][]byte{nil, {}, {1}, {2, 2, 'k', '1'}, sealed[:len(sealed)-17], []byte("plain protobuf")} {
		if _, err := k.Open(bad, ad); !errors.Is(err, seal.ErrMalformed) {
			t.Errorf("Open(%q) = %v, want ErrMalformed", bad, err)
		}
		if _, err := seal.KeyID(bad); !errors.Is(err, seal.ErrMalformed) {
			t.Errorf("KeyID(%q) = %v, want ErrMalformed", bad, err)
		}
	}
}

func TestParseKeys(t *testing.T) {
	for _, tc := range []struct{ spec, want string }{
		{"", "no seal key"},
		{" , ", "no seal key"},
		{hexA, "want kid:hexkey"},
		{"k1:" + hexA[:62], "31 bytes, want exactly 32"},
		{"k1:" + hexA + "00", "33 bytes, want exactly 32"},
		{"k1:zz" + hexA[2:], "not hexadecimal"},
		{"bad id:" + hexA, "key id must be"},
		{"k1:" + hexA + ",k1:" + hexB, "appears twice"},
	} {
		_, err := seal.ParseKeys(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseKeys(%q) = %v, want an error containing %q", tc.spec, err, tc.want)
			continue
		}
		if strings.Contains(err.Error(), hexA[2:20]) || strings.Contains(err.Error(), hexB[2:20]) {
			t.Errorf("ParseKeys(%q) echoes key material: %v", tc.spec, err)
		}
	}
	keys, err := seal.ParseKeys(" k2:" + strings.ToUpper(hexB) + " ,k1:" + hexA)
	if err != nil || len(keys) != 2 || keys[0].ID != "k2" || keys[1].ID != "k1" {
		t.Fatalf("ParseKeys = %v, %v", keys, err)
	}
}

func TestEphemeral(t *testing.T) {
	a, err := seal.Ephemeral()
	if err != nil || a.ActiveKeyID() != seal.EphemeralKeyID {
		t.Fatalf("Ephemeral = %v, %v", a, err)
	}
	b, _ := seal.Ephemeral()
	sealed, _ := a.Seal([]byte("x"), nil)
	if _, err := b.Open(sealed, nil); !errors.Is(err, seal.ErrTampered) {
		t.Errorf("two ephemeral keyrings share a key: %v", err)
	}
}

func TestNewRefusesBadKeys(t *testing.T) {
	for _, keys := range [][]seal.Key{
		nil,
		{{ID: "k1", Secret: make([]byte, 16)}},
		{{ID: "", Secret: make([]byte, 32)}},
		{{ID: "k1", Secret: make([]byte, 32)}, {ID: "k1", Secret: make([]byte, 32)}},
	} {
		if _, err := seal.New(keys); err == nil {
			t.Errorf("New(%d keys) accepted", len(keys))
		}
	}
}
