'use strict';
// The side-by-side benchmark's options (BENCH_*, listed in bench/side-by-side.js) and targets, read
// once from the environment.

const os = require('node:os');
const path = require('node:path');
const { positiveInt, nonNegativeInt } = require('./basics');

const ROOT = path.resolve(__dirname, '..', '..');
const BLOB_MB = positiveInt('BENCH_BLOB_MB', 1024);
const PAIRS = positiveInt('BENCH_PAIRS', 5);
const ONLY = (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);

/** BENCH_OURS_ENV ("K=V K2=V2" or "K=V,K2=V2"): set in our server's environment, to A/B a setting without editing code. */
function parseEnvList(name) {
  const env = {};
  for (const item of (process.env[name] ?? '').split(/[\s,]+/).filter(Boolean)) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(item);
    if (!m) throw new Error(`${name}: expected KEY=VALUE items separated by spaces or commas, got ${JSON.stringify(item)}`);
    env[m[1]] = m[2];
  }
  return env;
}

module.exports = {
  ROOT,
  RESULTS: process.env.BENCH_JSON === '-' ? null : path.resolve(process.env.BENCH_JSON || path.join(ROOT, 'bench', 'results', 'side-by-side.json')),
  MD_PATH: process.env.BENCH_MD === '-' ? null : path.resolve(process.env.BENCH_MD || path.join(ROOT, 'BENCHMARKS.md')),
  NOTE: process.env.BENCH_NOTE || null,
  OURS_ENV: parseEnvList('BENCH_OURS_ENV'),
  /** BENCH_THEIRS=ours: "theirs" is our server too, with BENCH_THEIRS_ENV, BENCH_THEIRS_NODE_ARGS and BENCH_THEIRS_DIST. */
  THEIRS_SERVER:
    process.env.BENCH_THEIRS === 'ours'
      ? { kind: 'ours', nodeArgs: process.env.BENCH_THEIRS_NODE_ARGS ?? process.env.BENCH_SERVER_NODE_ARGS, dist: process.env.BENCH_THEIRS_DIST || null }
      : {},
  THEIRS_ENV: process.env.BENCH_THEIRS === 'ours' ? parseEnvList('BENCH_THEIRS_ENV') : {},
  PAIRS,
  BLOB_MB,
  V1_MB: positiveInt('BENCH_V1_MB', BLOB_MB),
  DISK_MB: positiveInt('BENCH_DISK_MB', 1024),
  SKOPEO_MB: positiveInt('BENCH_SKOPEO_MB', 200),
  PAR_BLOBS: positiveInt('BENCH_PAR_BLOBS', 64),
  PAR_MB: positiveInt('BENCH_PAR_MB', 16),
  CONNECTIONS: positiveInt('BENCH_CONNECTIONS', 64),
  THREADS: positiveInt('BENCH_THREADS', Math.max(1, os.cpus().length)),
  SECONDS: positiveInt('BENCH_SECONDS', 10),
  TAGS: positiveInt('BENCH_TAGS', 100),
  PULLERS: positiveInt('BENCH_PULLERS', 500),
  PULLERS_SECONDS: positiveInt('BENCH_PULLERS_SECONDS', 60),
  PULLERS_SETTLE_SECONDS: nonNegativeInt('BENCH_PULLERS_SETTLE_SECONDS', 30),
  // A minute of load per run: fewer pairs than the other rows, enough to see RSS level off or not.
  PULLERS_PAIRS: positiveInt('BENCH_PULLERS_PAIRS', Math.min(PAIRS, 3)),
  /** Row 9's own RSS limits (issue 25): a budget for 500 downloads, and back down within 30 s. */
  PULLERS_RSS_LIMITS: { peakMiB: 300, settledMiB: 150 },
  RSS_LIMIT_MB: positiveInt('BENCH_RSS_LIMIT_MB', 150),
  RSS_SETTLED_LIMIT_MB: positiveInt('BENCH_RSS_SETTLED_LIMIT_MB', 120),
  SETTLE_SECONDS: nonNegativeInt('BENCH_SETTLE_SECONDS', 10),
  /** BENCH_ONLY's groups; empty: all. */
  ONLY,
  wants: (group) => ONLY.length === 0 || ONLY.includes(group),
  /** Ours must be this many times as fast as theirs in every A/B row. */
  TARGET_SPEEDUP: 1.2,
  /** Row 7: v1 layer PUT and GET at this fraction of min(sha256 speed, disk write speed). */
  TARGET_CEILING: 0.7,
  /** Row 8: how much ours' RSS may grow over one measurement's pairs. */
  GROWTH_TOLERANCE: { MiB: 16, fraction: 0.1 },
};
