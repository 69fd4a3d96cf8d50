'use strict';
// Row 8: both servers' peak and settled RSS per measurement (lib/ab.js records them in
// ctx.rssPerMeasurement: VmHWM reset through /proc/<pid>/clear_refs before each, VmRSS BENCH_SETTLE_SECONDS
// after each server's last run), the peak during row 1, and ours' RSS over the whole run (VmRSS after every
// pair, to show it does not grow). Not a group of its own: it reads what the other rows leave in ctx.

const { RSS_LIMIT_MB, RSS_SETTLED_LIMIT_MB, SETTLE_SECONDS, GROWTH_TOLERANCE } = require('../lib/options');

const PUSH_ROWS = ['push-mono', 'push-chunked'];

/** After the last row, before the servers stop: stop sampling, record peak and final RSS. */
function recordWholeRun(ctx) {
  for (const r of ctx.regs) {
    r.sampler.stop();
    ctx.peak[r.id] = { wholeRun: { sampledMaxMiB: r.sampler.maxKiB / 1024, vmHwmSinceLastResetMiB: r.hwmMiB(), finalRssMiB: r.rssMiB() } };
  }
}

/** Row 1's peak of `reg`: the larger VmHWM of rows 1a and 1b (each reset before it), and the sampled max. */
function pushPeak(ctx, reg) {
  const windows = ctx.rssPerMeasurement.filter((m) => PUSH_ROWS.includes(m.id));
  if (!windows.length) return null;
  return {
    vmHwmMiB: Math.max(...windows.map((m) => m[reg.id].peakMiB ?? 0)),
    sampledMaxMiB: maxPhase(reg.sampler, 'push-'),
    hwmReset: windows.every((m) => m[reg.id].hwmReset),
  };
}

/** The result's `rss` part. */
function memoryResult(ctx) {
  const { peak, rssAfterPair, rssPerMeasurement } = ctx;
  const ours = pushPeak(ctx, ctx.ours);
  const wholeRun = (id) =>
    Math.max(peak[id]?.wholeRun?.vmHwmSinceLastResetMiB ?? 0, peak[id]?.wholeRun?.sampledMaxMiB ?? 0, ...rssPerMeasurement.map((m) => m[id].peakMiB ?? 0));
  const rss = {
    limitMiB: RSS_LIMIT_MB,
    settledLimitMiB: RSS_SETTLED_LIMIT_MB,
    settleSeconds: SETTLE_SECONDS,
    push: ours ? { ours, theirs: pushPeak(ctx, ctx.theirs) } : null,
    perMeasurement: rssPerMeasurement,
    oursWholeRunPeakMiB: wholeRun('ours'),
    theirsWholeRunPeakMiB: wholeRun('theirs'),
    afterEachPair: rssAfterPair,
    growth: rssGrowth(rssAfterPair),
  };
  if (rss.push) {
    const oursPeak = Math.max(rss.push.ours.vmHwmMiB ?? 0, rss.push.ours.sampledMaxMiB ?? 0);
    rss.pushPeakOursMiB = oursPeak;
    rss.pushPeakTheirsMiB = Math.max(rss.push.theirs.vmHwmMiB ?? 0, rss.push.theirs.sampledMaxMiB ?? 0);
    rss.pushPass = oursPeak < RSS_LIMIT_MB;
  }
  return rss;
}

/** Largest sampled RSS over the phases whose name starts with `prefix`. */
function maxPhase(sampler, prefix) {
  let max = null;
  for (const [phase, kib] of Object.entries(sampler.phaseMaxKiB)) {
    if (phase.startsWith(prefix) && (max === null || kib / 1024 > max)) max = kib / 1024;
  }
  return max;
}

/** Per measurement: ours' RSS after its first and its last pair; growth beyond the tolerance is flagged. */
function rssGrowth(samples) {
  const byRow = new Map();
  for (const s of samples) {
    if (!byRow.has(s.row)) byRow.set(s.row, []);
    byRow.get(s.row).push(s);
  }
  const perRow = [];
  for (const [row, ss] of byRow) {
    const first = ss[0].ours;
    const last = ss[ss.length - 1].ours;
    const max = Math.max(...ss.map((s) => s.ours));
    const allowed = Math.max(GROWTH_TOLERANCE.MiB, GROWTH_TOLERANCE.fraction * first);
    perRow.push({ row, pairs: ss.length, firstMiB: first, lastMiB: last, maxMiB: max, growthMiB: last - first, grew: ss.length > 1 && last - first > allowed });
  }
  const all = samples.map((s) => s.ours);
  return {
    tolerance: `last - first <= max(${GROWTH_TOLERANCE.MiB} MiB, ${GROWTH_TOLERANCE.fraction * 100} % of first), per measurement`,
    perRow,
    firstMiB: all[0] ?? null,
    lastMiB: all[all.length - 1] ?? null,
    maxMiB: all.length ? Math.max(...all) : null,
    pass: perRow.every((r) => !r.grew),
  };
}

module.exports = { recordWholeRun, memoryResult };
