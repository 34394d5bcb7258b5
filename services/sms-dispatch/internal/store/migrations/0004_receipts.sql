-- Delivery receipts. A message SENT by a provider gets the gateway's own ids (provider_ids: aliyun's
-- BizId, tencent's SerialNo, one per segment for CMPP), and its receipt makes it DELIVERED or
-- UNDELIVERED with the carrier's code; one that waits too long for it becomes AT_RISK.
ALTER TABLE messages DROP CONSTRAINT messages_state_check;
ALTER TABLE messages ADD CONSTRAINT messages_state_check
    CHECK (state IN ('QUEUED', 'SENT', 'FAILED', 'DELIVERED', 'UNDELIVERED', 'AT_RISK'));
ALTER TABLE messages ADD COLUMN provider_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN delivery_code text NOT NULL DEFAULT '', ADD COLUMN receipt_at timestamptz;
-- The AT_RISK sweep reads only SENT rows, oldest first.
CREATE INDEX messages_sent_waiting ON messages (sent_at) WHERE state = 'SENT';

-- A receipt names its message by the provider's id: this finds it.
CREATE TABLE message_provider_ids (
    provider    text NOT NULL,
    provider_id text NOT NULL,
    message_id  text NOT NULL,
    PRIMARY KEY (provider, provider_id)
);

-- Receipts that came before their message was marked SENT (or for ids no message has yet), kept
-- until MarkSent applies them or they are a day old (domain.ParkedReceiptTTL). park_key is the
-- provider id, or "id:<message_id>" for a receipt without one (domain.ParkKey).
CREATE TABLE parked_receipts (
    provider    text        NOT NULL,
    park_key    text        NOT NULL,
    delivered   boolean     NOT NULL,
    code        text        NOT NULL,
    received_at timestamptz NOT NULL,
    PRIMARY KEY (provider, park_key)
);
CREATE INDEX parked_receipts_received ON parked_receipts (received_at);
