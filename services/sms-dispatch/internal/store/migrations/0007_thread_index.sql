-- A thread (order, phone, template) ordered by sequence: Create's late and superseded checks, and
-- the redelivery's superseded check, look a message's thread up by it. Without it they fell back to
-- messages_order_created (order_id only) or, worse, walked messages_due, whose dead entries (every
-- message sent since the last vacuum) grow with the load.
CREATE INDEX messages_thread ON messages (order_id, phone, template, sequence);
