-- New column: orders.outbox_event_id links an order to its `order.created` outbox event (NULL until published).
-- Plain ALTER (MySQL has no ADD COLUMN IF NOT EXISTS): the history table makes sure it runs once.
ALTER TABLE orders
  ADD COLUMN outbox_event_id BIGINT UNSIGNED NULL AFTER total_cents,
  ADD KEY idx_orders_outbox_event (outbox_event_id);

UPDATE orders o
  JOIN outbox x
    ON x.aggregate_type = 'order'
   AND x.aggregate_id = CAST(o.id AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_unicode_ci
   AND x.event_type = 'order.created'
   SET o.outbox_event_id = x.id
 WHERE o.outbox_event_id IS NULL;
