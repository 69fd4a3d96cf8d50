'use strict';
// The side-by-side method: a measurement runs ours and theirs alternately (A B A B ..., PAIRS pairs),
// each run after both registries are idle and every dirty page is written back, and is summed up as
// medians, min/max and the ratio ours/theirs against the target.

const { fmt, median } = require('./basics');
const { flushDirtyPages } = require('./machine');
const { CpuMeter, cpuSeconds, selfTreeCpuSeconds, waitForQuiet } = require('./procfs');
const { PAIRS, TARGET_SPEEDUP } = require('./options');

/**
 * Runs `fn(reg, pair)` for ours and theirs alternately, PAIRS times; `fn` resolves with { value, ...extra }.
 * Records values, server and client CPU and RSS; the row goes into ctx.rows (the report's order).
 * `def`: { id, group, title, unit, better: 'higher' (throughput) or 'lower' (seconds) }.
 */
async function measure(ctx, def, fn) {
  const regs = [ctx.ours, ctx.theirs];
  const row = { ...def, runs: { ours: [], theirs: [] } };
  ctx.rows.push(row);
  console.log(`\n${def.title}`);
  const cpu = new CpuMeter(regs);
  for (let pair = 1; pair <= PAIRS; pair++) {
    for (const reg of regs) {
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
      row.runs[reg.id].push(r);
      console.log(
        `  pair ${pair}/${PAIRS} ${reg.id.padEnd(6)} ${fmt(r.value, def.unit === 's' ? 2 : 1).padStart(9)} ${def.unit}` +
          `  (server CPU ${fmt(r.serverCpuSeconds, 2)} s${r.note ? `, ${r.note}` : ''})`,
      );
    }
    ctx.rssAfterPair.push({ row: def.id, pair, ours: ctx.ours.rssMiB(), theirs: ctx.theirs.rssMiB() });
  }
  row.cpu = cpu.stop();
  summarize(row);
  console.log(
    `  median ours ${fmt(row.ours.median, 2)} / theirs ${fmt(row.theirs.median, 2)} ${def.unit}: ours/theirs ${fmt(row.ratio, 2)}, ` +
      `ours ${fmt(row.speedup, 2)}x as fast (target ${TARGET_SPEEDUP}x: ${row.pass ? 'PASS' : 'FAIL'}); others' CPU ${fmt(row.cpu.othersCores, 2)} cores`,
  );
  return row;
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
  row.pass = row.speedup >= TARGET_SPEEDUP;
}

module.exports = { measure };
