-- The verification link of each challenge's current code (domain/link.go): the SHA-256 of its
-- 128-bit random token, never the token. NULL for challenges from before links. GetLink and a
-- Verify through the link look a challenge up by it, so it is indexed; unique, since a token names
-- exactly one challenge (a collision of 128 random bits would be refused, not shared).
ALTER TABLE challenges ADD COLUMN link_hash bytea;
CREATE UNIQUE INDEX challenges_link_hash ON challenges (link_hash) WHERE link_hash IS NOT NULL;
