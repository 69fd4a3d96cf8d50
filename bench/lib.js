'use strict';
// Small helpers shared by the benchmark scripts.

const net = require('node:net');

const MiB = 1024 * 1024;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const mibps = (bytes, seconds) => bytes / MiB / seconds;
const now = () => process.hrtime.bigint();
const secondsSince = (t0) => Number(now() - t0) / 1e9;
const fmt = (n, d = 1) => (n === null || n === undefined || Number.isNaN(n) ? '-' : n.toFixed(d));

/** A positive integer from the environment, or `def`. */
function positiveInt(name, def) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** A port that was free a moment ago on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Keep only the last `max` bytes of a stream (server logs, shown on failure). */
function tail(stream, max = 64 * 1024) {
  const t = { text: '' };
  stream.setEncoding('utf8');
  stream.on('data', (s) => {
    t.text = (t.text + s).slice(-max);
  });
  return t;
}

module.exports = { MiB, sleep, mibps, now, secondsSince, fmt, positiveInt, freePort, tail };
