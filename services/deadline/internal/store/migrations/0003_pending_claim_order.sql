-- The sweeper's claim orders by (next_attempt_at, order_id COLLATE "C", submission): an index in
-- exactly that order lets it walk the due pending rows in claim order and stop after the batch
-- (Index Scan + Limit) instead of fetching every due row and sorting them. It also serves NextDue
-- and CountPending, so it replaces the old one-column partial index under the same name.
DROP INDEX deadlines_pending_next;
CREATE INDEX deadlines_pending_next ON deadlines (next_attempt_at, order_id COLLATE "C", submission) WHERE state = 'PENDING';

-- The claim's planner estimate: next_attempt_at and due_at are strongly correlated (a timer never
-- attempted has next_attempt_at = due_at; the table keeps next_attempt_at >= due_at), so estimating
-- "both <= now" as the product of the two selectivities underestimates a burst of timers due at one
-- instant by orders of magnitude, and the planner then prefers a bitmap scan of every due row plus a
-- sort to the index scan that stops after the batch. The joint MCV list gets such bursts right.
CREATE STATISTICS deadlines_next_due (mcv) ON next_attempt_at, due_at FROM deadlines;
