-- A timer has a kind: 0 the verification deadline (CloseIfIncomplete), 1 the noon resend of the day
-- after the first code (AutoResend). Both kinds live in this one table so the sweeper's one claim,
-- lease, retry and fire bookkeeping serve both; existing rows are close timers. The kind joins the
-- primary key (a submission has at most one timer of each kind) and the end of the claim's index, so
-- the claim still walks one partial index in claim order and stops after the batch.
ALTER TABLE deadlines ADD COLUMN kind smallint NOT NULL DEFAULT 0 CHECK (kind IN (0, 1));
ALTER TABLE deadlines DROP CONSTRAINT deadlines_pkey, ADD PRIMARY KEY (order_id, submission, kind);
DROP INDEX deadlines_pending_next;
CREATE INDEX deadlines_pending_next ON deadlines (next_attempt_at, order_id COLLATE "C", submission, kind) WHERE state = 'PENDING';
