'use strict';
// The side-by-side method: a measurement runs ours and theirs alternately (A B A B ..., PAIRS pairs),
// each run after both registries are idle and every dirty page is written back, and is summed up as
// medians, min/max and the ratio ours/theirs against the target, with both servers' peak and settled RSS.

const { fmt, median, sleep } = require('./basics');
const { flushDirtyPages } = require('./machine');
const { CpuMeter, cpuSeconds, selfTreeCpuSeconds, waitForQuiet } = require('./procfs');
const { RssWindow } = require('./rss-window');
const { PAIRS, TARGET_SPEEDUP, SETTLE_SECONDS, RSS_LIMIT_MB, RSS_SETTLED_LIMIT_MB } = require('./options');

/**
 * Runs `fn(reg, pair)` for ours and theirs alternately, PAIRS times; `fn` resolves with { value, ...extra }.
 * Records values, server and client CPU and RSS; the row goes into ctx.rows (the report's order), its
 * peak and settled RSS into ctx.rssPerMeasurement (recordRss).
 * `def`: { id, group, title, unit, better: 'higher' (throughput) or 'lower' (seconds) }, and optionally
 * pairs (instead of PAIRS), target (speedup wanted; null: none; default TARGET_SPEEDUP), rssLimits
 * ({ peakMiB, settledMiB }), settleSeconds (instead of SETTLE_SECONDS), settleEachRun (every run, not only
 * the last, gets its settled RSS, r.settledRssMiB: a server's next run waits for it), columns (extra
 * per-run values for the report: [{ key, label, digits }]).
 */
async function measure(ctx, def, fn) {
  const regs = [ctx.ours, ctx.theirs];
  const pairs = def.pairs ?? PAIRS;
  const settleSeconds = def.settleSeconds ?? SETTLE_SECONDS;
  const row = { ...def, pairs, target: def.target === undefined ? TARGET_SPEEDUP : def.target, runs: { ours: [], theirs: [] } };
  ctx.rows.push(row);
  console.log(`\n${def.title}`);
  const cpu = new CpuMeter(regs);
  const rss = new RssWindow(regs, settleSeconds);
  const settling = new Map(); // per server: the settled reading after its previous run (settleEachRun)
  for (let pair = 1; pair <= pairs; pair++) {
    for (const reg of regs) {
      await settling.get(reg.id);
      const quietWaitSeconds = await waitForQuiet(regs.map((r) => r.pid));
      flushDirtyPages();
      reg.sampler.enter(`${def.id}:${pair}`);
      const c0 = cpuSeconds(reg.pid);
      const client0 = selfTreeCpuSeconds();
      const r = await fn(reg, pair);
      r.serverCpuSeconds ??= cpuSeconds(reg.pid) - c0; // fn may time a part of its work only
      r.clientCpuSeconds ??= selfTreeCpuSeconds() - client0; // this process + the clients it waited for
      r.maxRssMiB = reg.sampler.phaseMaxMiB(`${def.id}:${pair}`);
      r.quietWaitSeconds = quietWaitSeconds;
      reg.sampler.enter('between');
      if (pair === pairs) rss.ended(reg);
      else if (def.settleEachRun) settling.set(reg.id, sleep(settleSeconds * 1000).then(() => (r.settledRssMiB = reg.rssMiB())));
      row.runs[reg.id].push(r);
      console.log(
        `  pair ${pair}/${pairs} ${reg.id.padEnd(6)} ${fmt(r.value, def.unit === 's' ? 2 : 1).padStart(9)} ${def.unit}` +
          `  (server CPU ${fmt(r.serverCpuSeconds, 2)} s${r.note ? `, ${r.note}` : ''})`,
      );
    }
    ctx.rssAfterPair.push({ row: def.id, pair, ours: ctx.ours.rssMiB(), theirs: ctx.theirs.rssMiB() });
  }
  row.cpu = cpu.stop();
  summarize(row);
  console.log(
    `  median ours ${fmt(row.ours.median, 2)} / theirs ${fmt(row.theirs.median, 2)} ${def.unit}: ours/theirs ${fmt(row.ratio, 2)}, ` +
      `ours ${fmt(row.speedup, 2)}x as fast (${row.target === null ? 'no target' : `target ${row.target}x: ${row.pass ? 'PASS' : 'FAIL'}`}); others' CPU ${fmt(row.cpu.othersCores, 2)} cores`,
  );
  const mem = await rss.result();
  for (const id of ['ours', 'theirs']) row.runs[id][pairs - 1].settledRssMiB = mem[id].settledMiB;
  recordRss(ctx, row, mem);
  return row;
}

/**
 * Puts a measurement's peak and settled RSS (RssWindow.result()) into ctx.rssPerMeasurement, checked
 * against its limits (def.rssLimits, or BENCH_RSS_LIMIT_MB and BENCH_RSS_SETTLED_LIMIT_MB), and logs them.
 */
function recordRss(ctx, def, mem) {
  const limits = def.rssLimits ?? { peakMiB: RSS_LIMIT_MB, settledMiB: RSS_SETTLED_LIMIT_MB };
  const entry = {
    id: def.id,
    title: def.title,
    limits,
    ownLimits: def.rssLimits !== undefined,
    ...mem,
    peakOver: mem.ours.peakMiB !== null && mem.ours.peakMiB >= limits.peakMiB,
    settledOver: mem.ours.settledMiB !== null && mem.ours.settledMiB >= limits.settledMiB,
  };
  ctx.rssPerMeasurement.push(entry);
  const flags = [entry.peakOver && `ours' peak >= ${limits.peakMiB} MiB`, entry.settledOver && `ours' settled >= ${limits.settledMiB} MiB`].filter(Boolean);
  const side = (id) => `${id} peak ${fmt(mem[id].peakMiB)}${mem[id].hwmReset ? '' : ' (VmHWM reset refused: since start)'}, settled ${fmt(mem[id].settledMiB)}`;
  console.log(`  RSS MiB: ${side('ours')}; ${side('theirs')} (settled: ${mem.settleSeconds} s after each one's last run)${flags.length ? `: ${flags.join(', ')}` : ''}`);
  return entry;
}

function summarize(row) {
  for (const id of ['ours', 'theirs']) {
    const vs = row.runs[id].map((r) => r.value);
    row[id] = {
      median: median(vs),
      min: Math.min(...vs),
      max: Math.max(...vs),
      serverCpuSecondsMedian: median(row.runs[id].map((r) => r.serverCpuSeconds)),
    };
  }
  row.ratio = row.ours.median / row.theirs.median;
  row.speedup = row.better === 'higher' ? row.ratio : 1 / row.ratio;
  row.pass = row.target === null ? null : row.speedup >= row.target;
}

module.exports = { measure, recordRss };
