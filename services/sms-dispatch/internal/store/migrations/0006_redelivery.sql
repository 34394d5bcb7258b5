-- Redelivery (domain/redeliver.go): a message SENT by one failover provider that comes back
-- UNDELIVERED, or without a receipt in time, is queued again for the next provider that never had it.
-- redeliveries counts those re-queues; redeliverable, settled when the message is marked SENT, says
-- whether it may get one more (a try left, a provider left); text_held says its sealed text was kept
-- past SENT only for that, and is wiped once the message is final.
ALTER TABLE messages ADD COLUMN redeliveries integer NOT NULL DEFAULT 0,
    ADD COLUMN redeliverable boolean NOT NULL DEFAULT false,
    ADD COLUMN text_held boolean NOT NULL DEFAULT false;

-- barred: the provider had the message (or may have had it: its outcome unknown) before a
-- redelivery. It is never handed the message again, idempotent or not, and its late receipts are
-- told apart from the current provider's.
ALTER TABLE message_handoffs ADD COLUMN barred boolean NOT NULL DEFAULT false;
