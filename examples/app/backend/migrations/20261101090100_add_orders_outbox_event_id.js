'use strict';
// New column: orders.outbox_event_id links an order to its `order.created` outbox event (NULL until published).

exports.up = async function up(knex) {
  if (!(await knex.schema.hasColumn('orders', 'outbox_event_id'))) {
    await knex.schema.alterTable('orders', (table) => {
      table.bigInteger('outbox_event_id').unsigned().nullable().after('total_cents');
      table.index(['outbox_event_id'], 'idx_orders_outbox_event');
    });
  }
  await knex.raw(
    `UPDATE orders o JOIN outbox x
       ON x.aggregate_type = 'order'
      AND x.aggregate_id = CAST(o.id AS CHAR CHARACTER SET utf8mb4) COLLATE utf8mb4_unicode_ci
      AND x.event_type = 'order.created'
     SET o.outbox_event_id = x.id
     WHERE o.outbox_event_id IS NULL`,
  );
};

exports.down = async function down(knex) {
  if (await knex.schema.hasColumn('orders', 'outbox_event_id')) {
    await knex.schema.alterTable('orders', (table) => {
      table.dropIndex(['outbox_event_id'], 'idx_orders_outbox_event');
      table.dropColumn('outbox_event_id');
    });
  }
};
