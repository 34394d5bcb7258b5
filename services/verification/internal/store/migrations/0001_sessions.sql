-- One session per submitted order (order_id, submission); the row lock on it serialises every check,
-- resend and close of that submission, so "all verified" and "timed out" cannot both happen.
CREATE TABLE sessions (
    id          uuid        PRIMARY KEY,
    order_id    text        NOT NULL,
    submission  integer     NOT NULL CHECK (submission > 0),
    state       text        NOT NULL CHECK (state IN ('OPEN', 'PASSED', 'FAILED', 'TIMED_OUT', 'CANCELLED')),
    deadline_at timestamptz NOT NULL,
    locale      text        NOT NULL,
    created_at  timestamptz NOT NULL,
    closed_at   timestamptz,
    UNIQUE (order_id, submission)
);

-- One challenge per distinct phone of a session. The code is stored only as an HMAC with the id of
-- the key that made it (keys rotate); the plaintext lives only in memory and in the outbox payload.
CREATE TABLE challenges (
    id              uuid        PRIMARY KEY,
    session_id      uuid        NOT NULL REFERENCES sessions (id),
    verifier_id     text        NOT NULL,
    phone           text        NOT NULL,
    roles           text[]      NOT NULL,
    code_hash       bytea       NOT NULL,
    code_key_id     text        NOT NULL,
    generation      integer     NOT NULL CHECK (generation > 0),
    failed_attempts integer     NOT NULL DEFAULT 0,
    resends_used    integer     NOT NULL DEFAULT 0,
    last_sent_at    timestamptz NOT NULL,
    state           text        NOT NULL CHECK (state IN ('PENDING', 'PASSED', 'LOCKED')),
    passed_at       timestamptz,
    UNIQUE (session_id, verifier_id)
);
-- Verify and ResendCode look up the pending challenges of a phone.
CREATE INDEX challenges_pending_phone ON challenges (phone) WHERE state = 'PENDING';

-- The HMACs of the ID tails a verifier may answer with (several persons can share one phone).
CREATE TABLE challenge_id_tails (
    challenge_id uuid  NOT NULL REFERENCES challenges (id),
    key_id       text  NOT NULL,
    tail_hash    bytea NOT NULL,
    PRIMARY KEY (challenge_id, tail_hash)
);
