-- ListDeadlines orders order ids bytewise (COLLATE "C"), as Go compares strings, so that both
-- storage engines page in exactly the same order whatever the database's collation.
DROP INDEX deadlines_due;
CREATE INDEX deadlines_due ON deadlines (due_at, order_id COLLATE "C", submission);
