-- What the carrier said of the SMS of a challenge's current code (domain.CodeDelivery): '' pending,
-- DELIVERED, UNDELIVERED, AT_RISK. A resend's new code starts pending again.
ALTER TABLE challenges ADD COLUMN delivery text NOT NULL DEFAULT '';
