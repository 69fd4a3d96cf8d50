'use strict';
// Small helpers every benchmark uses: units, clocks, options from the environment, medians, tables.

const os = require('node:os');

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

/** A non-negative integer from the environment, or `def`. */
function nonNegativeInt(name, def) {
  return process.env[name] === '0' ? 0 : positiveInt(name, def);
}

/** Median of numbers (NaN for none). */
function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Environment variables as one line: "K=V K2=V2". */
const envText = (env) => Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ');

/** A plain-text table: first column (or all, with `leftAll`) left-aligned, the rest right-aligned. */
function table(rows, header, leftAll = false) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (cells) =>
    cells.map((c, i) => (i === 0 || leftAll ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The first fields of a results JSON file: which benchmark, when, on what. */
function resultHeader(benchmark) {
  return {
    benchmark,
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? null,
    units: { throughput: 'MiB/s (2^20 bytes per second)', memory: 'MiB (2^20 bytes)' },
  };
}

/** A row of an A/B table: the medians of `a[key]` and `b[key]` and b's change against a, in percent. */
function medianRow(a, b, title, key, digits) {
  const ma = median(a[key]);
  const mb = median(b[key]);
  return [title, fmt(ma, digits), fmt(mb, digits), `${fmt((mb / ma - 1) * 100, 1)} %`];
}

module.exports = { MiB, sleep, mibps, now, secondsSince, fmt, positiveInt, nonNegativeInt, median, medianRow, envText, table, resultHeader };
