-- Approved records belong to the authority; a tenant files against one only as a holder (security
-- review H2, M2): the tenants whose access the administration approved, by an approved FIRST_FILING or
-- ADD_ACCESS, until an approved CANCEL_ACCESS of theirs (domain.HolderChangeOf).
CREATE TABLE subject_holders (
    subject_id text        NOT NULL REFERENCES subjects (subject_id),
    tenant     text        NOT NULL,
    since      timestamptz NOT NULL,
    PRIMARY KEY (subject_id, tenant)
);
-- The records approved before holders existed: each tenant whose last approved FIRST_FILING (1) or
-- ADD_ACCESS (3) of the subject came after its last approved CANCEL_ACCESS (6) of it. An approved
-- order's updated_at is its approval.
INSERT INTO subject_holders (subject_id, tenant, since)
SELECT g.subject_id, g.tenant, g.since FROM (
        SELECT subject_id, tenant, max(updated_at) AS since FROM orders
        WHERE state = 'APPROVED' AND filing_type IN (1, 3) AND subject_id <> ''
        GROUP BY subject_id, tenant) g
    JOIN subjects s ON s.subject_id = g.subject_id
    WHERE NOT EXISTS (SELECT 1 FROM orders c WHERE c.state = 'APPROVED' AND c.filing_type = 6
        AND c.subject_id = g.subject_id AND c.tenant = g.tenant AND c.updated_at >= g.since);

-- Each tenant's record-mismatch budget: one row per comparison of its order with a record it does not
-- hold, reserved in its own transaction before the comparison ran (so the failed submission's
-- rollback keeps it) and kept when the order did not match. Rows past the window are deleted when the
-- tenant reserves again. No foreign keys: the reservation is written while the submission's
-- transaction holds the order and subject rows.
CREATE TABLE record_mismatches (
    id         text        PRIMARY KEY,
    tenant     text        NOT NULL,
    order_id   text        NOT NULL,
    subject_id text        NOT NULL,
    at         timestamptz NOT NULL
);
CREATE INDEX record_mismatches_tenant ON record_mismatches (tenant, at);
