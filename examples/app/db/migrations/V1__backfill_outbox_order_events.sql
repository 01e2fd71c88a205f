-- The canonical-schema release's data migration, for the built-in `sql` driver (migrate_driver: sql).
-- The same release as the backend's knex migrations (examples/app/backend/migrations): use one driver or the other.
-- Runs after infra/ddls/create_distributed_tables.sql, which creates `outbox`.
--
-- One `order.created` outbox event per order of the last 7 days; those orders were already published by the old
-- code path, so the events are recorded as delivered.
INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, status, attempts, created_at, available_at,
                    delivered_at)
SELECT 'order', CAST(o.id AS CHAR CHARACTER SET utf8mb4), 'order.created',
       JSON_OBJECT('order_id', o.id, 'user_id', o.user_id, 'status', o.status, 'total_cents', o.total_cents,
                   'backfilled', TRUE),
       'delivered', 1, o.created_at, o.created_at, o.created_at
FROM orders o
WHERE o.created_at >= NOW() - INTERVAL 7 DAY
  AND NOT EXISTS (SELECT 1 FROM outbox x
                  WHERE x.aggregate_type = 'order'
                    AND x.aggregate_id = CAST(o.id AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_unicode_ci
                    AND x.event_type = 'order.created');
