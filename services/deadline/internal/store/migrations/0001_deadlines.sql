-- One durable timer per order submission. The row is also the sweeper's retry state: attempts,
-- last_error and next_attempt_at (the lease while claimed, the backoff after a failure).
CREATE TABLE deadlines (
    order_id        text        NOT NULL,
    submission      integer     NOT NULL CHECK (submission > 0),
    due_at          timestamptz NOT NULL,
    state           text        NOT NULL CHECK (state IN ('PENDING', 'FIRED', 'CANCELLED')),
    -- never earlier than due_at: the claim condition on it is what keeps a timer from firing early
    next_attempt_at timestamptz NOT NULL CHECK (next_attempt_at >= due_at),
    attempts        integer     NOT NULL DEFAULT 0,
    last_error      text        NOT NULL DEFAULT '',
    fired_at        timestamptz,
    closed          boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (order_id, submission)
);

-- The sweeper's claim reads only pending rows in next_attempt_at order; fired and cancelled rows
-- (the vast majority over time) stay out of the index, so the claim stays fast with millions of rows.
CREATE INDEX deadlines_pending_next ON deadlines (next_attempt_at) WHERE state = 'PENDING';

-- ListDeadlines pages soonest first.
CREATE INDEX deadlines_due ON deadlines (due_at, order_id, submission);
