'use strict';
// Row 9: many pullers (issue 25). BENCH_PULLERS concurrent connections (wrk, lib/pullers.js) GET a mix of
// 32 pre-pushed blobs of 1 KiB to 8 MiB for BENCH_PULLERS_SECONDS; throughput in MiB/s and requests/s,
// errors, latencies, and ours' RSS: the peak, and BENCH_PULLERS_SETTLE_SECONDS after every run. Runs after
// the other rows, as what it leaves in ours' heap would show in theirs.

const crypto = require('node:crypto');
const path = require('node:path');
const { MiB } = require('../lib/basics');
const { makeBlob } = require('../lib/bytes');
const { measure } = require('../lib/ab');
const { send, expectStatus } = require('../lib/http');
const { pullersScript, runPullers } = require('../lib/pullers');
const { pushMonolithic } = require('../lib/v2-client');
const { PULLERS, PULLERS_SECONDS, PULLERS_SETTLE_SECONDS, PULLERS_PAIRS, PULLERS_RSS_LIMITS, THREADS } = require('../lib/options');

const BLOBS = 32;
const MIN_BYTES = 1024;
const MAX_BYTES = 8 * MiB;
const REPO = 'bench/pullers';

const DEF = {
  id: 'pullers',
  group: 'pullers',
  title: `9. ${PULLERS} concurrent pullers, ${BLOBS} blobs of 1 KiB-8 MiB, ${PULLERS_SECONDS} s (wrk)`,
  unit: 'MiB/s',
  better: 'higher',
  target: null, // issue 25 asks for no ratio here, only that throughput does not drop
  pairs: PULLERS_PAIRS,
  settleSeconds: PULLERS_SETTLE_SECONDS,
  settleEachRun: true,
  rssLimits: PULLERS_RSS_LIMITS,
  columns: [
    { key: 'rps', label: 'req/s (median)', digits: 0 },
    { key: 'errorCount', label: 'errors (all runs)', digits: 0, agg: 'sum' },
    { key: 'p50ms', label: 'p50 ms (median)', digits: 1 },
    { key: 'p99ms', label: 'p99 ms (median)', digits: 1 },
    { key: 'maxRssMiB', label: 'max sampled RSS MiB, each run', digits: 0, agg: 'list' },
    { key: 'settledRssMiB', label: `RSS ${PULLERS_SETTLE_SECONDS} s after, MiB, each run`, digits: 0, agg: 'list' },
  ],
};

/** Sizes from 1 KiB to 8 MiB, evenly spaced on a log scale: as many small blobs as large ones. */
const sizes = () => Array.from({ length: BLOBS }, (_, i) => Math.round(MIN_BYTES * (MAX_BYTES / MIN_BYTES) ** (i / (BLOBS - 1))));

async function run(ctx) {
  const blobs = sizes().map((bytes, i) => makeBlob(`pullers:${i}:${Date.now()}`, bytes));
  const paths = blobs.map((b) => `/v2/${REPO}/blobs/${b.digest}`);
  for (const reg of ctx.regs) {
    for (const b of blobs) await pushMonolithic(reg, REPO, b);
    // Check once what wrk will pull: a wrong answer would be measured just as fast.
    for (const [i, b] of blobs.entries()) {
      const res = await send(reg.url(paths[i]), { agent: reg.agent });
      expectStatus(`${reg.id} GET pullers blob`, res, 200);
      const got = `sha256:${crypto.createHash('sha256').update(res.body).digest('hex')}`;
      if (got !== b.digest) throw new Error(`${reg.id} GET pullers blob ${i}: bytes hash to ${got}, expected ${b.digest}`);
    }
  }
  const script = pullersScript(path.join(ctx.tmp, 'pullers.lua'), paths);
  const load = { threads: THREADS, connections: PULLERS, seconds: PULLERS_SECONDS };
  await measure(ctx, DEF, async (reg) => {
    const r = await runPullers(reg.base, script, load);
    return { value: r.MiBps, ...r };
  });
}

module.exports = { group: 'pullers', run };
