-- The first answer to each mutating request, so a retry with the same request_id gets it again (AIP-155).
CREATE TABLE idempotency_keys (
    method       text        NOT NULL,
    request_id   text        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    PRIMARY KEY (method, request_id)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
