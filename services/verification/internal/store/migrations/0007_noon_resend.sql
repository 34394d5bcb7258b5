-- The noon resend (AutoResend) marks its session when it draws the automatic codes, in the same
-- transaction: a second call, from another deadline replica, a retry or a restart, finds the mark
-- and sends nothing. NULL: not made yet.
ALTER TABLE sessions ADD COLUMN auto_resent_at timestamptz;
