-- The key a sensitive payload is sealed with (pkg/seal; the payload's own header names it too), ''
-- for a payload kept in the clear. Rotation: a key may leave the keyring once no row names it.
ALTER TABLE outbox ADD COLUMN key_id text NOT NULL DEFAULT '';
