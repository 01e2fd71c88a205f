'use strict';
// Backfill: one `order.created` outbox event per order of the last 7 days, so that consumers of the new outbox
// (created by infra/ddls/create_distributed_tables.sql, applied before the migrations) see the recent history.
// These orders were already published by the old code path, so the events are recorded as delivered.
// Idempotent: an order that already has its event is skipped.

const RECENT_DAYS = 7;

exports.up = async function up(knex) {
  await knex.raw(
    `INSERT INTO outbox (aggregate_type, aggregate_id, event_type, payload, status, attempts, created_at,
                         available_at, delivered_at)
     SELECT 'order', CAST(o.id AS CHAR), 'order.created',
            JSON_OBJECT('order_id', o.id, 'user_id', o.user_id, 'status', o.status, 'total_cents', o.total_cents,
                        'backfilled', TRUE),
            'delivered', 1, o.created_at, o.created_at, o.created_at
     FROM orders o
     WHERE o.created_at >= NOW() - INTERVAL ? DAY
       AND NOT EXISTS (SELECT 1 FROM outbox x
                       WHERE x.aggregate_type = 'order'
                         AND x.aggregate_id = CAST(o.id AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_unicode_ci
                         AND x.event_type = 'order.created')`,
    [RECENT_DAYS],
  );
};

exports.down = async function down(knex) {
  await knex('outbox')
    .where({ aggregate_type: 'order', event_type: 'order.created' })
    .whereRaw("JSON_VALUE(payload, '$.backfilled') = 'true'")
    .del();
};
