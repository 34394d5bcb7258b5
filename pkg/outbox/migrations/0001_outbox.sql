-- Messages to other services, written in the same transaction as the change that causes them.
-- A delivered row is deleted; a row the receiver refuses for good is kept with dead_at set.
CREATE TABLE outbox (
    id           bigserial PRIMARY KEY,
    target       text        NOT NULL,
    payload      bytea       NOT NULL,
    created_at   timestamptz NOT NULL,
    available_at timestamptz NOT NULL,
    attempts     integer     NOT NULL DEFAULT 0,
    last_error   text,
    dead_at      timestamptz,
    -- sensitive payloads (codes, phones, ID tails) are wiped when a row is parked as dead.
    sensitive    boolean     NOT NULL DEFAULT false
);
-- The relay's claim reads only live rows in available_at order.
CREATE INDEX outbox_live ON outbox (available_at, id) WHERE dead_at IS NULL;
