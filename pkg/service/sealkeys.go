package service

import (
	"errors"
	"fmt"

	"go.uber.org/zap"

	"github.com/icpverify/icpverify/pkg/config"
	"github.com/icpverify/icpverify/pkg/keyspec"
	"github.com/icpverify/icpverify/pkg/seal"
)

// SealKeys is the --seal-keys flag (SEAL_KEYS) of a service that keeps codes at rest sealed
// (pkg/seal): "kid:hexkey[,kid:hexkey...]", exactly 32 bytes each, the first seals and all open. Like
// verification's --hmac-keys it is required on PostgreSQL (every replica and restart must open what
// another sealed), a placeholder is an open default, and the memory store makes an ephemeral key.
type SealKeys struct{ spec *string }

// RegisterSealKeys declares --seal-keys on f; sealed says what the keys seal, for the usage text.
func RegisterSealKeys(f *config.Flags, sealed string) SealKeys {
	return SealKeys{spec: f.String("seal-keys", "", `AES-256-GCM keys that seal `+sealed+` at rest: "kid:hexkey[,kid:hexkey...]", `+
		`exactly 32 bytes (64 hex digits) each; the first seals, all open (rotation: put the new key first, drop the old one `+
		`once nothing sealed with it is left). Required with --store=postgres; with --store=memory empty means a random key`)}
}

// Check validates the flag: required unless the store is memory, and well formed.
func (k SealKeys) Check(common config.Common) error {
	if *k.spec == "" {
		if common.Memory() {
			return nil
		}
		return errors.New("--seal-keys (SEAL_KEYS) is required with --store=postgres: every replica and restart must open " +
			`what another sealed; make one with: SEAL_KEYS="s1:$(openssl rand -hex 32)"`)
	}
	if _, err := seal.ParseKeys(*k.spec); err != nil {
		return fmt.Errorf("--seal-keys: %w", err)
	}
	return nil
}

// OpenDefaults names a placeholder key (keyspec.HasPlaceholder): anyone who read it could open what
// it seals.
func (k SealKeys) OpenDefaults() []config.OpenDefault {
	if keyspec.HasPlaceholder(*k.spec) {
		return []config.OpenDefault{{Flag: "--seal-keys", What: "a seal key is a placeholder"}}
	}
	return nil
}

// Keyring parses the keys, or, with none (allowed only on the memory store), makes an ephemeral one
// and says loudly what that means. It logs the key ids, never the keys.
func (k SealKeys) Keyring(log *zap.Logger) (*seal.Keyring, error) {
	var keys *seal.Keyring
	var err error
	if *k.spec == "" {
		keys, err = seal.Ephemeral()
		if err != nil {
			return nil, err
		}
		log.Warn("NO --seal-keys (SEAL_KEYS) CONFIGURED: sealing with a random ephemeral key, FOR DEVELOPMENT ONLY. " +
			"Set SEAL_KEYS=kid:hexkey (32 bytes) for anything else.")
	} else if keys, err = seal.Parse(*k.spec); err != nil {
		return nil, fmt.Errorf("--seal-keys: %w", err)
	}
	log.Info("seal keys", zap.String("seal_key_id", keys.ActiveKeyID()), zap.Strings("seal_key_ids", keys.KeyIDs()))
	return keys, nil
}
