'use strict';
// Row 7, ours only: v1 layer PUT and GET (bench/lib/v1-round.js, as bench/v1-layer.js runs it) against
// the machine's limits, sha256 speed (openssl speed -evp sha256) and disk write speed (BENCH_DISK_MB +
// fsync in the temp dir, the faster of buffered and O_DIRECT writes), each measured once per pair,
// interleaved with the v1 runs; and where the CPU went (main thread, busiest other thread, the rest,
// the client) with the fastest that work allows on this machine's cores. The result goes to ctx.v1, its
// peak and settled RSS (theirs idle) with every other row's.

const { recordRss } = require('../lib/ab');
const { MiB, fmt, median } = require('../lib/basics');
const { agent } = require('../lib/http');
const { sha256Speed, diskWriteSpeed, cpuBoundMiBps, flushDirtyPages } = require('../lib/machine');
const { CpuMeter, waitForQuiet } = require('../lib/procfs');
const { RssWindow } = require('../lib/rss-window');
const { round } = require('../lib/v1-round');
const { PAIRS, V1_MB, DISK_MB, TARGET_CEILING, SETTLE_SECONDS } = require('../lib/options');

async function run(ctx) {
  console.log(`\n7. v1 layer PUT/GET ${V1_MB} MiB (ours only) vs sha256 speed and disk write speed (${DISK_MB} MiB + fsync)`);
  const { ours, theirs } = ctx;
  const cpu = new CpuMeter(ctx.regs);
  const rss = new RssWindow(ctx.regs, SETTLE_SECONDS);
  const runs = [];
  for (let pair = 1; pair <= PAIRS; pair++) {
    await waitForQuiet([ours.pid]);
    const sha = sha256Speed();
    const d = diskWriteSpeed(ctx.tmp, DISK_MB);
    const disk = d.MiBps;
    flushDirtyPages();
    const r = await round(ours.base, ours.sampler, pair, V1_MB * MiB);
    ours.sampler.enter('between');
    const pushBoundMiBps = cpuBoundMiBps(V1_MB, ctx.machine.cpus, r.pushServerCpuSeconds, r.pushClientCpuSeconds, r.pushThreads);
    const pullBoundMiBps = cpuBoundMiBps(V1_MB, ctx.machine.cpus, r.pullServerCpuSeconds, r.pullClientCpuSeconds, r.pullThreads);
    runs.push({ pair, sha256MiBps: sha.MiBps, sha256Source: sha.source, diskMiBps: disk, diskBufferedMiBps: d.bufferedMiBps, diskDirectMiBps: d.directMiBps, ...r, pushBoundMiBps, pullBoundMiBps });
    ctx.rssAfterPair.push({ row: 'v1', pair, ours: ours.rssMiB(), theirs: theirs.rssMiB() });
    console.log(
      `  pair ${pair}/${PAIRS}: sha256 ${fmt(sha.MiBps, 0)} MiB/s, disk ${fmt(disk, 0)} MiB/s ` +
        `(buffered ${fmt(d.bufferedMiBps, 0)}, O_DIRECT ${d.directMiBps === null ? 'refused' : fmt(d.directMiBps, 0)}), ` +
        `v1 PUT ${fmt(r.pushMiBps)} MiB/s (server CPU ${fmt(r.pushServerCpuSeconds, 2)} s, CPU bound ${fmt(pushBoundMiBps, 0)}), ` +
        `GET ${fmt(r.pullMiBps)} MiB/s (server CPU ${fmt(r.pullServerCpuSeconds, 2)} s, CPU bound ${fmt(pullBoundMiBps, 0)})`,
    );
  }
  rss.ended(ours);
  agent.destroy(); // the v1 round's keep-alive client
  const put = median(runs.map((r) => r.pushMiBps));
  const get = median(runs.map((r) => r.pullMiBps));
  const sha = median(runs.map((r) => r.sha256MiBps));
  const disk = median(runs.map((r) => r.diskMiBps));
  const ceiling = Math.min(sha, disk);
  const v1Result = {
    layerMiB: V1_MB,
    diskTestMiB: DISK_MB,
    runs,
    cpu: cpu.stop(),
    median: {
      putMiBps: put,
      getMiBps: get,
      sha256MiBps: sha,
      diskMiBps: disk,
      ceilingMiBps: ceiling,
      putBoundMiBps: median(runs.map((r) => r.pushBoundMiBps)),
      getBoundMiBps: median(runs.map((r) => r.pullBoundMiBps)),
    },
    min: { putMiBps: Math.min(...runs.map((r) => r.pushMiBps)), getMiBps: Math.min(...runs.map((r) => r.pullMiBps)) },
    max: { putMiBps: Math.max(...runs.map((r) => r.pushMiBps)), getMiBps: Math.max(...runs.map((r) => r.pullMiBps)) },
    putVsCeiling: put / ceiling,
    getVsCeiling: get / ceiling,
    putPass: put / ceiling >= TARGET_CEILING,
    getPass: get / ceiling >= TARGET_CEILING,
  };
  console.log(
    `  median PUT ${fmt(put)} MiB/s = ${fmt(100 * v1Result.putVsCeiling, 0)} % of min(sha256 ${fmt(sha, 0)}, disk ${fmt(disk, 0)}) ` +
      `(${v1Result.putPass ? 'PASS' : 'FAIL'}); GET ${fmt(get)} MiB/s = ${fmt(100 * v1Result.getVsCeiling, 0)} % (${v1Result.getPass ? 'PASS' : 'FAIL'})`,
  );
  ctx.v1 = v1Result;
  recordRss(ctx, { id: 'v1', title: `7. v1 layer PUT and GET, ${V1_MB} MiB (ours only; theirs idle)` }, await rss.result());
}

module.exports = { group: 'v1', run };
