-- Filing orders. The spec (subject, principal, websites, persons) is kept as JSONB as the portal
-- entered it after normalisation: phones in E.164, ID numbers cleaned; the columns beside it are
-- what queries filter and lock on.
CREATE TABLE orders (
    -- "C": ids compare bytewise, so the listing order (created_at, order_id) is the same on every
    -- database collation and in the memory engine.
    order_id      text        COLLATE "C" PRIMARY KEY,
    filing_type   integer     NOT NULL,
    subject_id    text        NOT NULL DEFAULT '',
    spec          jsonb       NOT NULL,
    state         text        NOT NULL CHECK (state IN ('DRAFT', 'AWAITING_VERIFICATION', 'UNDER_REVIEW',
                                                        'APPROVED', 'REJECTED', 'RETURNED', 'CANCELLED')),
    submission    integer     NOT NULL DEFAULT 0,
    deadline_at   timestamptz,
    return_reason integer     NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
-- ListOrders pages newest first, with or without a state filter.
CREATE INDEX orders_newest ON orders (created_at DESC, order_id DESC);
CREATE INDEX orders_state_newest ON orders (state, created_at DESC, order_id DESC);
CREATE INDEX orders_subject ON orders (subject_id) WHERE subject_id <> '';

-- Who must verify, per submission: one row per distinct E.164 phone, in the order they were computed.
-- The ID tails are not kept here: they go to verification in the OpenSession call only.
CREATE TABLE order_verifiers (
    order_id   text    NOT NULL REFERENCES orders (order_id),
    submission integer NOT NULL,
    position   integer NOT NULL,
    phone      text    NOT NULL,
    roles      text[]  NOT NULL,
    PRIMARY KEY (order_id, submission, position),
    UNIQUE (order_id, submission, phone)
);

-- Every state transition with time, actor and reason.
CREATE TABLE order_history (
    id         bigserial   PRIMARY KEY,
    order_id   text        NOT NULL REFERENCES orders (order_id),
    at         timestamptz NOT NULL,
    from_state text        NOT NULL,
    to_state   text        NOT NULL,
    actor      text        NOT NULL,
    reason     text        NOT NULL DEFAULT ''
);
CREATE INDEX order_history_order ON order_history (order_id, id);

-- The approved record of each subject (principal and websites with their persons), created by an
-- approved FIRST_FILING and updated by every later approved order.
CREATE TABLE subjects (
    subject_id      text        PRIMARY KEY,
    name            text        NOT NULL DEFAULT '',
    record          jsonb       NOT NULL,
    deregistered_at timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
