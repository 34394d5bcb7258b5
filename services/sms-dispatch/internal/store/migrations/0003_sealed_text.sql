-- A message's text, which holds the code, is kept sealed (pkg/seal, bound to the message id):
-- sealed_text is the sealed body and params, key_id the key that sealed them; both are wiped (NULL,
-- '') when the text is, once the provider accepted the message or it failed for good.
ALTER TABLE messages ADD COLUMN sealed_text bytea, ADD COLUMN key_id text NOT NULL DEFAULT '';
-- The texts stored before this migration were in the clear, and SQL has no key to seal them with:
-- they are wiped, and a message still queued fails as one with no text would (its verifier asks for
-- a new code). The service was not released with plaintext texts, so nothing of value is lost.
UPDATE messages SET state = 'FAILED', last_error = 'no message text to send' WHERE state = 'QUEUED';
UPDATE messages SET redacted = true WHERE body IS NOT NULL OR params <> '{}';
ALTER TABLE messages DROP COLUMN body, DROP COLUMN params;
