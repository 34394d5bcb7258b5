package domain

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/icpverify/icpverify/pkg/keyspec"
)

// MinKeyBytes is the shortest HMAC key accepted: a 6-digit code space is tiny, so the key carries all
// of the protection against someone who reads the database.
const MinKeyBytes = 32

// EphemeralKeyID names the random key generated when no key is configured (development only).
const EphemeralKeyID = "ephemeral"

// Key is one HMAC key with the id stored beside every hash made with it.
type Key = keyspec.Key

// ParseKeys reads "kid:hexkey[,kid:hexkey...]" (pkg/keyspec), every key at least MinKeyBytes. The
// first key signs; all of them verify, so a key can be rotated by putting the new one first and
// keeping the old one until its hashes are gone.
func ParseKeys(spec string) ([]Key, error) { return keyspec.Parse("hmac", spec, MinKeyBytes, 0) }

// EphemeralKey returns a random key for development, when no key is configured. Hashes made with it
// do not verify after a restart.
func EphemeralKey() (Key, error) {
	b := make([]byte, MinKeyBytes)
	if _, err := rand.Read(b); err != nil {
		return Key{}, err
	}
	return Key{ID: EphemeralKeyID, Secret: b}, nil
}

// Hasher makes and checks the keyed hashes of codes and ID tails. Each input is domain-separated
// ("code:" / "idtail:") and bound to its challenge id, so a hash cannot be replayed for another field
// or another challenge.
type Hasher struct {
	active string
	keys   map[string][]byte
}

// NewHasher signs with keys[0] and verifies with any of keys.
func NewHasher(keys []Key) (*Hasher, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("hasher needs at least one key")
	}
	h := &Hasher{active: keys[0].ID, keys: map[string][]byte{}}
	for _, k := range keys {
		if len(k.Secret) < MinKeyBytes {
			return nil, fmt.Errorf("hmac key %q shorter than %d bytes", k.ID, MinKeyBytes)
		}
		h.keys[k.ID] = k.Secret
	}
	return h, nil
}

// ActiveKeyID is the id of the signing key.
func (h *Hasher) ActiveKeyID() string { return h.active }

func codeInput(challengeID, code string) string { return "code:" + challengeID + ":" + code }
func tailInput(challengeID, tail string) string { return "idtail:" + challengeID + ":" + tail }

func mac(key []byte, input string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(input))
	return m.Sum(nil)
}

// Fingerprint is a keyed digest of personal data that is only ever compared with itself, such as the
// phone and ID tail inside an idempotency key's request hash: an unkeyed hash of a 6-character tail
// and a phone number could be reversed by brute force.
func (h *Hasher) Fingerprint(parts ...string) string {
	sum := mac(h.keys[h.active], "fingerprint:"+strings.Join(parts, "\x00"))
	return hex.EncodeToString(sum)
}

// HashCode hashes a code for a challenge with the active key.
func (h *Hasher) HashCode(challengeID, code string) (keyID string, sum []byte) {
	return h.active, mac(h.keys[h.active], codeInput(challengeID, code))
}

// HashTail hashes a normalised ID tail for a challenge with the active key.
func (h *Hasher) HashTail(challengeID, tail string) (keyID string, sum []byte) {
	return h.active, mac(h.keys[h.active], tailInput(challengeID, tail))
}

// verify recomputes with the key named by keyID and compares in constant time. An unknown key id
// (a retired key) still costs one HMAC, with the active key, so the timing stays the same; it never matches.
func (h *Hasher) verify(keyID, input string, stored []byte) bool {
	key, ok := h.keys[keyID]
	if !ok {
		_ = hmac.Equal(mac(h.keys[h.active], input), stored)
		return false
	}
	return hmac.Equal(mac(key, input), stored)
}

// VerifyCode reports whether code matches the stored hash of a challenge.
func (h *Hasher) VerifyCode(keyID string, stored []byte, challengeID, code string) bool {
	return h.verify(keyID, codeInput(challengeID, code), stored)
}

// VerifyTail reports whether tail matches one stored ID-tail hash of a challenge.
func (h *Hasher) VerifyTail(keyID string, stored []byte, challengeID, tail string) bool {
	return h.verify(keyID, tailInput(challengeID, tail), stored)
}

// Burn does the hashing work of one check (one code and one tail) when there is nothing to check
// against, so an unknown phone answers in about the time a known one does.
func (h *Hasher) Burn(code, tail string) {
	var zero [sha256.Size]byte
	_ = h.VerifyCode(h.active, zero[:], "00000000-0000-0000-0000-000000000000", code)
	_ = h.VerifyTail(h.active, zero[:], "00000000-0000-0000-0000-000000000000", tail)
}

func phoneInput(phone string) string { return "phone:" + phone }

// PhoneHash is the keyed hash a phone's failure records are stored under, with the active key.
func (h *Hasher) PhoneHash(phone string) []byte { return mac(h.keys[h.active], phoneInput(phone)) }

// PhoneHashes are the phone's hashes under every key, the active one first: a lookup by any of them
// finds the records made before a key rotation too, so a rotation does not reset a phone's budget.
func (h *Hasher) PhoneHashes(phone string) [][]byte {
	out := [][]byte{h.PhoneHash(phone)}
	for id, k := range h.keys {
		if id != h.active {
			out = append(out, mac(k, phoneInput(phone)))
		}
	}
	return out
}
