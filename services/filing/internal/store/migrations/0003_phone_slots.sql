-- SubmitOrder counts, per verifier phone, the orders awaiting verification that name it.
CREATE INDEX order_verifiers_phone ON order_verifiers (phone);
