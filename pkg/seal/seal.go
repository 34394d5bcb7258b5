// Package seal keeps secrets at rest sealed: AES-256-GCM under a keyring of named keys, the first of
// which seals and all of which open, so a key rotates as the HMAC keys do (put the new key first,
// keep the old one until nothing sealed with it is left). A sealed value names its key and is bound
// to associated data (the row and column it was written for), so a blob copied to another row, or
// read as another field, does not open.
//
// The sealed form is version (1 byte, 1), key id length (1 byte), key id, nonce (12 bytes), then the
// GCM ciphertext and tag. The header (version, length, key id) is authenticated with the
// caller's associated data.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/icpverify/icpverify/pkg/keyspec"
)

// KeyBytes is the size of every key: AES-256.
const KeyBytes = 32

// EphemeralKeyID names the random key made when none is configured (development only).
const EphemeralKeyID = "ephemeral"

// version is the first byte of the sealed form.
const version = 1

// Overhead is how many bytes sealing adds to a plaintext, besides the key id.
const Overhead = 2 + nonceBytes + tagBytes

const (
	nonceBytes = 12
	tagBytes   = 16
)

// The errors Open returns, wrapped with what they concern (never key material or plaintext).
var (
	// ErrUnknownKey: the value was sealed with a key the keyring does not hold (retired too early,
	// or never configured here).
	ErrUnknownKey = errors.New("seal: sealed with a key this keyring does not hold")
	// ErrMalformed: the value is not in the sealed form (truncated, another version, plaintext).
	ErrMalformed = errors.New("seal: not a sealed value")
	// ErrTampered: the value does not authenticate: changed, or opened with other associated data
	// (moved to another row or column).
	ErrTampered = errors.New("seal: sealed value does not authenticate (changed, or not written for this row)")
)

// Key is one named AES-256 key.
type Key = keyspec.Key

// Keyring seals with its first key and opens with any of its keys. It is safe for concurrent use.
type Keyring struct {
	active string
	ids    []string
	aeads  map[string]cipher.AEAD
}

// ParseKeys reads "kid:hexkey[,kid:hexkey...]" (pkg/keyspec), every key exactly 32 bytes (64 hex
// digits). Errors never echo key material.
func ParseKeys(spec string) ([]Key, error) { return keyspec.Parse("seal", spec, KeyBytes, KeyBytes) }

// Parse is ParseKeys then New.
func Parse(spec string) (*Keyring, error) {
	keys, err := ParseKeys(spec)
	if err != nil {
		return nil, err
	}
	return New(keys)
}

// Ephemeral returns a keyring of one random key (EphemeralKeyID): what it seals opens in this process
// only. For development, when no key is configured.
func Ephemeral() (*Keyring, error) {
	b := make([]byte, KeyBytes)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return New([]Key{{ID: EphemeralKeyID, Secret: b}})
}

// New seals with keys[0] and opens with any of keys.
func New(keys []Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("seal: a keyring needs at least one key")
	}
	k := &Keyring{active: keys[0].ID, aeads: make(map[string]cipher.AEAD, len(keys))}
	for _, key := range keys {
		if !keyspec.IDRE.MatchString(key.ID) {
			return nil, fmt.Errorf("seal: key id %q must be 1-32 of [A-Za-z0-9_.-]", key.ID)
		}
		if _, dup := k.aeads[key.ID]; dup {
			return nil, fmt.Errorf("seal: key id %q appears twice", key.ID)
		}
		if len(key.Secret) != KeyBytes {
			return nil, fmt.Errorf("seal: key %q is %d bytes, want %d", key.ID, len(key.Secret), KeyBytes)
		}
		block, err := aes.NewCipher(key.Secret)
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		k.aeads[key.ID] = aead
		k.ids = append(k.ids, key.ID)
	}
	return k, nil
}

// ActiveKeyID is the id of the key that seals.
func (k *Keyring) ActiveKeyID() string { return k.active }

// KeyIDs lists the ids of every key, the sealing one first (for the start-up log: never the keys).
func (k *Keyring) KeyIDs() []string { return append([]string(nil), k.ids...) }

// Seal seals plaintext with the active key, bound to ad (which is not stored: Open needs the same).
func (k *Keyring) Seal(plaintext, ad []byte) ([]byte, error) {
	kid := k.active
	head := header(kid)
	out := make([]byte, len(head), len(head)+nonceBytes+len(plaintext)+tagBytes)
	copy(out, head)
	nonce := out[len(head) : len(head)+nonceBytes]
	out = out[:len(head)+nonceBytes]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return k.aeads[kid].Seal(out, nonce, plaintext, associated(head, ad)), nil
}

// Open returns the plaintext of a value Seal made with ad, with whichever of the keyring's keys sealed it.
func (k *Keyring) Open(sealed, ad []byte) ([]byte, error) {
	kid, rest, err := split(sealed)
	if err != nil {
		return nil, err
	}
	aead, ok := k.aeads[kid]
	if !ok {
		return nil, fmt.Errorf("%w (key id %q)", ErrUnknownKey, kid)
	}
	head := sealed[:len(sealed)-len(rest)]
	plain, err := aead.Open(nil, rest[:nonceBytes], rest[nonceBytes:], associated(head, ad))
	if err != nil {
		return nil, fmt.Errorf("%w (key id %q)", ErrTampered, kid)
	}
	return plain, nil
}

// KeyID names the key a sealed value was sealed with, without opening it (rotation: which values
// still need the old key).
func KeyID(sealed []byte) (string, error) {
	kid, _, err := split(sealed)
	return kid, err
}

func header(kid string) []byte {
	return append([]byte{version, byte(len(kid))}, kid...)
}

// associated is what GCM authenticates besides the ciphertext: the header, then the caller's data.
func associated(head, ad []byte) []byte {
	return append(append(make([]byte, 0, len(head)+len(ad)), head...), ad...)
}

// split reads the header: the key id and what follows it (nonce, ciphertext and tag).
func split(sealed []byte) (kid string, rest []byte, err error) {
	if len(sealed) < 2 || sealed[0] != version {
		return "", nil, ErrMalformed
	}
	n := int(sealed[1])
	if n == 0 || len(sealed) < 2+n+nonceBytes+tagBytes {
		return "", nil, ErrMalformed
	}
	kid = string(sealed[2 : 2+n])
	if !keyspec.IDRE.MatchString(kid) {
		return "", nil, ErrMalformed
	}
	return kid, sealed[2+n:], nil
}
