-- Outgoing SMS. body and params hold the code: they are wiped (redacted) once the provider accepted
-- the message or it failed for good.
CREATE TABLE messages (
    message_id      text        PRIMARY KEY,
    order_id        text        NOT NULL DEFAULT '',
    phone           text        NOT NULL,
    template        text        NOT NULL,
    params          jsonb       NOT NULL DEFAULT '{}',
    locale          text        NOT NULL,
    body            text,
    state           text        NOT NULL CHECK (state IN ('QUEUED', 'SENT', 'FAILED')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    expire_at       timestamptz NOT NULL,
    provider        text        NOT NULL DEFAULT '',
    last_error      text        NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz,
    redacted        boolean     NOT NULL DEFAULT false
);
-- The dispatcher's claim reads only queued rows in due order.
CREATE INDEX messages_due ON messages (next_attempt_at) WHERE state = 'QUEUED';
-- ListMessages pages newest first, optionally by order.
CREATE INDEX messages_created ON messages (created_at DESC, message_id DESC);
CREATE INDEX messages_order_created ON messages (order_id, created_at DESC, message_id DESC);

-- Per-phone send log for the caps (1/min, 5/h, 10/day). One row per message: a resend of the same
-- message id after a crash is the same SMS to the gateway (it dedups by Idempotency-Key).
CREATE TABLE phone_sends (
    message_id text        PRIMARY KEY,
    phone      text        NOT NULL,
    sent_at    timestamptz NOT NULL
);
CREATE INDEX phone_sends_phone_sent ON phone_sends (phone, sent_at);
