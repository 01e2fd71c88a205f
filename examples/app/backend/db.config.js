'use strict';
// Database settings from the environment only (the release's migrate phase sets them; no password in files):
//   DB_HOST, DB_PORT, DB_USER, DB_PASSWORD, DB_NAME, and DB_SOCKET (a unix socket, wins over host and port);
//   with TLS, DB_SSL_CA, DB_SSL_CERT, DB_SSL_KEY (PEM file paths) and DB_SSL_VERIFY (`true`: the server's certificate
//   chain and, over TCP, its host name are verified; `false`: encrypted, not verified).
const fs = require('fs');

function tlsFromEnv(env) {
  if (env.DB_SSL_VERIFY === undefined) {
    return undefined;
  }
  const verify = env.DB_SSL_VERIFY === 'true';
  const ssl = { rejectUnauthorized: verify };
  if (env.DB_SSL_CA && verify) {
    ssl.ca = fs.readFileSync(env.DB_SSL_CA);
  }
  if (env.DB_SSL_CERT) {
    ssl.cert = fs.readFileSync(env.DB_SSL_CERT);
    ssl.key = fs.readFileSync(env.DB_SSL_KEY);
  }
  if (env.DB_SOCKET) {
    ssl.checkServerIdentity = () => undefined; // no host name to check on a unix socket; the chain still is
  }
  return ssl;
}

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
  const ssl = tlsFromEnv(env);
  if (ssl) {
    connection.ssl = ssl;
  }
  return connection;
}

module.exports = { connectionFromEnv };
