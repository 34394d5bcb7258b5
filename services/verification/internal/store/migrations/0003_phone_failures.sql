-- The per-phone failure budget (security review H1): one row per counted failed check of a phone,
-- across every session, order and tenant, keyed by the phone's HMAC (domain.Hasher.PhoneHash) like
-- every stored personal datum. The failure that spent the budget carries locks_until. Rows older
-- than the window no longer count (and their lock has ended): the writes prune them.
CREATE TABLE phone_failures (
    phone_hash  bytea       NOT NULL,
    failed_at   timestamptz NOT NULL,
    locks_until timestamptz
);
CREATE INDEX phone_failures_phone ON phone_failures (phone_hash);
CREATE INDEX phone_failures_age ON phone_failures (failed_at);
