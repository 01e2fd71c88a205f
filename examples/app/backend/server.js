#!/usr/bin/env node
// The example application's HTTP server: what the release's smoke tests and watch window talk to.
// Node's standard library only (no npm dependency), so `node server.js` runs anywhere Node does.
//
//   PORT=3000 HOST=127.0.0.1 node server.js
//
// Endpoints (all GET):
//   /health       200 {"status":"ok",...}; 503 {"status":"maintenance"} while MAINTENANCE_FILE exists,
//                 503 {"status":"unhealthy"} while HEALTH_FAIL_FILE exists (lets tests break it on purpose)
//   /version      200 {"name":..., "version":..., "schema":...}
//   /api/status   200 {"uptime_seconds":..., "requests":...}
// Anything else is 404 {"error":"not found"}. SIGTERM/SIGINT close the server cleanly.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number.parseInt(process.env.PORT || '3000', 10);
const MAINTENANCE_FILE = process.env.MAINTENANCE_FILE || '';
const HEALTH_FAIL_FILE = process.env.HEALTH_FAIL_FILE || '';
const SCHEMA_VERSION = process.env.SCHEMA_VERSION || process.env.APP_SCHEMA_VERSION || 'unknown';
const started = Date.now();
let requests = 0;

function packageInfo() {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, 'package.json'), 'utf8'));
    return { name: pkg.name || 'backend', version: pkg.version || '0.0.0' };
  } catch {
    return { name: 'backend', version: '0.0.0' };
  }
}

function exists(file) {
  return Boolean(file) && fs.existsSync(file);
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(text),
    'Cache-Control': 'no-store',
  });
  res.end(text);
}

function health() {
  if (exists(MAINTENANCE_FILE)) {
    return [503, { status: 'maintenance' }];
  }
  if (exists(HEALTH_FAIL_FILE)) {
    return [503, { status: 'unhealthy', reason: 'health check forced to fail' }];
  }
  return [200, { status: 'ok', uptime_seconds: Math.round((Date.now() - started) / 1000) }];
}

const routes = {
  '/health': health,
  '/version': () => [200, { ...packageInfo(), schema: SCHEMA_VERSION }],
  '/api/status': () => [200, { uptime_seconds: Math.round((Date.now() - started) / 1000), requests }],
};

const server = http.createServer((req, res) => {
  requests += 1;
  const url = new URL(req.url, 'http://localhost');
  const route = routes[url.pathname];
  if (!route) {
    send(res, 404, { error: 'not found' });
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD');
    send(res, 405, { error: 'method not allowed' });
    return;
  }
  const [status, body] = route();
  send(res, status, body);
});

server.listen(PORT, HOST, () => {
  const { port } = server.address();
  console.log(`backend listening on http://${HOST}:${port}`);
});

function shutdown(signal) {
  console.log(`backend: ${signal}, closing`);
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
