-- Failover: which providers each message was handed to. A row is written, under the message's claim,
-- before the provider is called, so a retry after a crash or a lease expiry knows the provider may
-- have the message and goes to the next one: no provider that is not idempotent by our message id
-- ever gets one id twice. A provider that answered with a refusal (it did not take the message) is
-- marked refused: once every provider was tried, a refused one may be handed the message again.
CREATE TABLE message_handoffs (
    message_id text        NOT NULL REFERENCES messages (message_id) ON DELETE CASCADE,
    provider   text        NOT NULL,
    handed_at  timestamptz NOT NULL,
    refused    boolean     NOT NULL DEFAULT false,
    PRIMARY KEY (message_id, provider)
);
