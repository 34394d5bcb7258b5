-- A voided code (ReportDelivery: its SMS was never accepted by a provider, so it reached nobody) has
-- no hash: NULL matches no entry, and a resend stores the new code's hash in its place.
ALTER TABLE challenges ALTER COLUMN code_hash DROP NOT NULL;
