'use strict';
// Row 8: peak RSS (VmHWM, reset through /proc/<pid>/clear_refs before row 1) of both servers during
// row 1, and ours' RSS over the whole run (VmRSS after every pair, to show it does not grow). Not a
// group of its own: it reads what the other rows leave in ctx.peak and ctx.rssAfterPair.

const { resetPeakRss } = require('../lib/procfs');
const { RSS_LIMIT_MB, GROWTH_TOLERANCE } = require('../lib/options');

/** Before row 1: reset both servers' VmHWM; returns whether each reset worked. */
function resetPeaks(ctx) {
  return ctx.regs.map((r) => resetPeakRss(r.pid));
}

/** After row 1: both servers' peak RSS during it, then reset VmHWM again for the rest of the run. */
function recordPushPeaks(ctx, hwmReset) {
  for (const r of ctx.regs) {
    ctx.peak[r.id] = { push: { vmHwmMiB: r.hwmMiB(), sampledMaxMiB: maxPhase(r.sampler, 'push-'), hwmReset: hwmReset[ctx.regs.indexOf(r)] } };
    resetPeakRss(r.pid);
  }
}

/** After the last row, before the servers stop: stop sampling, record peak and final RSS. */
function recordWholeRun(ctx) {
  for (const r of ctx.regs) {
    r.sampler.stop();
    ctx.peak[r.id] = { ...(ctx.peak[r.id] ?? {}), wholeRun: { sampledMaxMiB: r.sampler.maxKiB / 1024, vmHwmSinceLastResetMiB: r.hwmMiB(), finalRssMiB: r.rssMiB() } };
  }
}

/** The result's `rss` part. */
function memoryResult(ctx) {
  const { peak, rssAfterPair } = ctx;
  const rss = {
    limitMiB: RSS_LIMIT_MB,
    push: peak.ours?.push ? { ours: peak.ours.push, theirs: peak.theirs.push } : null,
    oursWholeRunPeakMiB: Math.max(peak.ours?.push?.vmHwmMiB ?? 0, peak.ours?.wholeRun?.vmHwmSinceLastResetMiB ?? 0, peak.ours?.wholeRun?.sampledMaxMiB ?? 0),
    theirsWholeRunPeakMiB: Math.max(peak.theirs?.push?.vmHwmMiB ?? 0, peak.theirs?.wholeRun?.vmHwmSinceLastResetMiB ?? 0, peak.theirs?.wholeRun?.sampledMaxMiB ?? 0),
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

module.exports = { resetPeaks, recordPushPeaks, recordWholeRun, memoryResult };
