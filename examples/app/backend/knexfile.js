'use strict';
// knex configuration: `npm run migrate:run` (knex migrate:latest) applies ./migrations in order and records each
// one in the knex_migrations table, which the release's migrate phase compares before and after.
const { connectionFromEnv } = require('./db.config');

module.exports = {
  client: 'mysql2',
  connection: () => connectionFromEnv(),
  pool: { min: 0, max: 2 },
  migrations: {
    directory: './migrations',
    tableName: 'knex_migrations',
    loadExtensions: ['.js'],
  },
};
