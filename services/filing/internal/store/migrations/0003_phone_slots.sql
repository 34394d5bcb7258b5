-- SubmitOrder counts, per verifier phone, the orders awaiting verification that name it.
CREATE INDEX order_verifiers_phone ON order_verifiers (phone);

-- Phones whose failure budget verification spent (ReturnOrder's phone_locks): no order naming one is
-- submitted before until. Rows whose time has passed are ignored.
CREATE TABLE phone_locks (
    phone text        PRIMARY KEY,
    until timestamptz NOT NULL
);
