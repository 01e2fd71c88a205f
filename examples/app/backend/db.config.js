'use strict';
// Database settings from the environment only (the release's migrate phase sets them; no password in files):
//   DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME, and DB_SOCKET (a unix socket, wins over host and port).

function connectionFromEnv(env = process.env) {
  const missing = ['DB_USER', 'DB_NAME'].filter((name) => !env[name]);
  if (missing.length) {
    throw new Error(`missing environment variable(s): ${missing.join(', ')} (see examples/app/backend/README.md)`);
  }
  const connection = {
    user: env.DB_USER,
    password: env.DB_PASSWORD || '',
    database: env.DB_NAME,
    charset: 'utf8mb4',
    timezone: 'Z',
    multipleStatements: false,
  };
  if (env.DB_SOCKET) {
    connection.socketPath = env.DB_SOCKET;
  } else {
    connection.host = env.DB_HOST || '127.0.0.1';
    connection.port = Number.parseInt(env.DB_PORT || '3306', 10);
  }
  return connection;
}

module.exports = { connectionFromEnv };
