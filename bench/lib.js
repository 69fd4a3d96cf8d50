'use strict';
// Small helpers shared by the benchmark scripts.

const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const { spawnSync } = require('node:child_process');

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


const CHUNK = MiB;
const SHA_FALLBACK_MB = 256;

/**
 * Benchmark bytes: AES-128-CTR keystream (encrypting zeros), keyed by `seed`. Deterministic, fast (AES-NI),
 * incompressible, and every chunk is a fresh buffer, so nothing queued in a socket is ever mutated.
 */
class LayerGenerator {
  constructor(seed, totalBytes) {
    const key = crypto.createHash('sha256').update(`v1-layer-bench:${seed}`).digest();
    this.cipher = crypto.createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
    this.zeros = Buffer.alloc(CHUNK);
    this.remaining = totalBytes;
  }
  /** Next chunk (at most 1 MiB), or null at the end. */
  next() {
    if (this.remaining <= 0) return null;
    const n = Math.min(CHUNK, this.remaining);
    this.remaining -= n;
    return this.cipher.update(n === CHUNK ? this.zeros : this.zeros.subarray(0, n));
  }
}

function sha256Speed() {
  const openssl = spawnSync('openssl', ['speed', '-evp', 'sha256', '-bytes', '16384', '-seconds', '1'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (!openssl.error && openssl.status === 0) {
    // "sha256   1732034.56k" : 1000s of bytes per second for the 16384-byte column.
    const line = openssl.stdout.split('\n').find((l) => /^\s*sha256\s+[\d.]+k\s*$/i.test(l));
    if (line) {
      const kBps = Number(line.trim().split(/\s+/)[1].replace(/k$/i, ''));
      return { MiBps: (kBps * 1000) / MiB, source: 'openssl speed -evp sha256 -bytes 16384 -seconds 1' };
    }
  }
  const buf = crypto.randomBytes(MiB);
  const h = crypto.createHash('sha256');
  const t0 = now();
  for (let i = 0; i < SHA_FALLBACK_MB; i++) h.update(buf);
  h.digest();
  return { MiBps: mibps(SHA_FALLBACK_MB * MiB, secondsSince(t0)), source: `node crypto sha256 over ${SHA_FALLBACK_MB} MiB` };
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  const n = Number(r.stdout);
  return !r.error && Number.isInteger(n) && n > 0 ? n : 100;
})();

function readStatusKiB(pid, field) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm'));
    return m ? Number(m[1]) : null;
  } catch {
    return null; // process gone
  }
}

function cpuSeconds(pid) {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields[0] is field 3 (state)
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime: fields 14 and 15
  } catch {
    return NaN;
  }
}

module.exports = {
  LayerGenerator,
  sha256Speed,
  readStatusKiB,
  cpuSeconds,
  MiB, sleep, mibps, now, secondsSince, fmt, positiveInt, freePort, tail };
