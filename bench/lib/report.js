'use strict';
// The side-by-side benchmark's reports from its result object: the summary printed at the end and
// BENCHMARKS.md. The format is what BENCHMARKS.md readers (and diffs between runs) rely on.

const { fmt, median, envText, table } = require('./basics');
const { TARGET_CEILING } = require('./options');

/** Where skopeo's time goes on the benchmark machine (printed under the client ceiling when skopeo is that version). */
const SKOPEO_PROFILE =
  'Where skopeo 1.9.3 spends its time (`perf record` of one push and one pull of the 200 MiB image against ours, ' +
  '2026-11-24): the client runs single-threaded on the one big layer, and 64 % (push) and 55 % (pull) of its samples ' +
  "are in one function, Go's AVX2 SHA-256 block code (`rorx` by 6, 11, 25 and 2, 13, 22): this skopeo is built with " +
  'Go 1.19.8, whose crypto/sha256 has no SHA-NI path (Go added one in 1.21), so it hashes at ~400 MiB/s where ' +
  '`openssl speed` does ~1700 MiB/s on the same CPU. Nearly all the rest is the kernel (socket copies, and on pull ' +
  "the page-cache writes of the layer). Ours used 0.10 s of CPU for a pull that took skopeo 1.1 s. So rows 3a and 3b " +
  'measure skopeo: a skopeo built with Go 1.21 or later (or an image of several smaller layers, which skopeo copies ' +
  'in parallel) would move the ceiling, not a faster server.';

function mdTable(header, rows, align) {
  const a = align ?? header.map((_, i) => (i === 0 ? 'l' : 'r'));
  return [
    `| ${header.join(' | ')} |`,
    `| ${a.map((x) => (x === 'r' ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

/** A row's extra column (def.columns) over its runs: the median, or (agg) the sum, or every run's value. */
function columnCell(c, runs) {
  const vs = runs.map((x) => x[c.key]);
  if (c.agg === 'sum') return fmt(vs.reduce((a, b) => a + b, 0), c.digits);
  if (c.agg === 'list') return vs.map((v) => fmt(v, c.digits)).join(', ');
  return fmt(median(vs), c.digits);
}

const digits = (row) => (row.unit === 's' ? 2 : row.unit === 'req/s' ? 0 : 1);

/** A row's target as a table cell: "≥ 1.2×: PASS" (bold FAIL in Markdown), or "none". */
const targetCell = (row, md) => (row.target === null ? 'none' : `≥ ${row.target}×: ${row.pass ? 'PASS' : md ? '**FAIL**' : 'FAIL'}`);

/** "1a" of "1a. blob push ...". */
const rowNumber = (title) => /^(\w+)\./.exec(title)?.[1] ?? title;

/** The largest of `pick` over the measurements `ms` as "max 131.2 MiB (1a)", and whether none is `over` its limit. */
function worstRss(ms, pick, over) {
  const worst = ms.reduce((w, m) => (w === null || (pick(m) ?? -1) > (pick(w) ?? -1) ? m : w), null);
  return { text: `max ${fmt(pick(worst))} MiB (${rowNumber(worst.title)})`, pass: !ms.some(over) };
}

/** Issue 25's memory targets: peak and settled RSS per measurement, against the common limits and the rows' own. */
function rssTargetLines(rss) {
  const out = { common: [], own: [] };
  const common = rss.perMeasurement.filter((m) => !m.ownLimits);
  const others = rss.perMeasurement.filter((m) => m.ownLimits).map((m) => rowNumber(m.title));
  const but = others.length ? ` but ${others.join(', ')}` : '';
  if (common.length) {
    const peak = worstRss(common, (m) => m.ours.peakMiB, (m) => m.peakOver);
    const settled = worstRss(common, (m) => m.ours.settledMiB, (m) => m.settledOver);
    out.common.push([`8. ours peak RSS (VmHWM) in every measurement${but}`, `< ${rss.limitMiB} MiB`, peak.text, peak.pass ? 'PASS' : 'FAIL']);
    out.common.push([`8. ours RSS ${rss.settleSeconds} s after every measurement${but}`, `< ${rss.settledLimitMiB} MiB`, settled.text, settled.pass ? 'PASS' : 'FAIL']);
  }
  for (const m of rss.perMeasurement.filter((x) => x.ownLimits)) {
    out.own.push([`${rowNumber(m.title)}. ours peak RSS (VmHWM)`, `< ${m.limits.peakMiB} MiB`, `${fmt(m.ours.peakMiB)} MiB`, m.peakOver ? 'FAIL' : 'PASS']);
    out.own.push([`${rowNumber(m.title)}. ours RSS ${m.settleSeconds} s after the load`, `< ${m.limits.settledMiB} MiB`, `${fmt(m.ours.settledMiB)} MiB`, m.settledOver ? 'FAIL' : 'PASS']);
  }
  return out;
}

function targetLines(result) {
  const out = [];
  for (const row of result.rows) {
    if (row.target === null) continue;
    out.push([row.title, `ours ≥ ${row.target}× as fast`, `${fmt(row.speedup, 2)}×`, row.pass ? 'PASS' : 'FAIL']);
  }
  if (result.v1) {
    const v = result.v1;
    out.push([`7. v1 layer PUT ${v.layerMiB} MiB`, `≥ ${TARGET_CEILING * 100} % of min(sha256, disk)`, `${fmt(100 * v.putVsCeiling, 0)} %`, v.putPass ? 'PASS' : 'FAIL']);
    out.push([`7. v1 layer GET ${v.layerMiB} MiB`, `≥ ${TARGET_CEILING * 100} % of min(sha256, disk)`, `${fmt(100 * v.getVsCeiling, 0)} %`, v.getPass ? 'PASS' : 'FAIL']);
  }
  if (result.rss.push) {
    out.push([`8. ours peak RSS during the ${result.params.blobMiB} MiB pushes`, `< ${result.rss.limitMiB} MiB`, `${fmt(result.rss.pushPeakOursMiB)} MiB`, result.rss.pushPass ? 'PASS' : 'FAIL']);
  }
  const rss = rssTargetLines(result.rss);
  out.push(...rss.common);
  out.push(['8. ours RSS, no growth over the run', result.rss.growth.tolerance, `${fmt(result.rss.growth.firstMiB)} → ${fmt(result.rss.growth.lastMiB)} MiB (max ${fmt(result.rss.growth.maxMiB)})`, result.rss.growth.pass ? 'PASS' : 'FAIL']);
  out.push(...rss.own);
  return out;
}

function summaryText(result) {
  const rows = result.rows.map((r) => [
    r.title,
    `${fmt(r.ours.median, digits(r))} ${r.unit}`,
    `${fmt(r.theirs.median, digits(r))} ${r.unit}`,
    fmt(r.ratio, 2),
    `${fmt(r.speedup, 2)}x`,
    targetCell(r, false).replace('≥', '>=').replace('×', 'x'),
  ]);
  const parts = [
    `side-by-side, ${result.params.pairs} pair(s), medians (ours = tsregistry ${result.versions.ours}` +
      `${Object.keys(result.params.oursEnv ?? {}).length ? ` with ${envText(result.params.oursEnv)}` : ''}, theirs = ${result.versions.dockerRegistry})`,
    table(rows, ['measurement', 'ours', 'theirs', 'ours/theirs', 'ours as fast', 'target']),
    '',
    table(targetLines(result), ['target', 'wanted', 'measured', 'verdict']),
  ];
  if (result.rss.push) {
    parts.push(`peak RSS during row 1: ours ${fmt(result.rss.pushPeakOursMiB)} MiB, theirs ${fmt(result.rss.pushPeakTheirsMiB)} MiB`);
  }
  if (result.rss.perMeasurement.length) {
    const flag = (m) => [m.peakOver && `peak >= ${m.limits.peakMiB}`, m.settledOver && `settled >= ${m.limits.settledMiB}`].filter(Boolean).join(', ') || 'ok';
    parts.push(
      '',
      table(
        result.rss.perMeasurement.map((m) => [m.title, fmt(m.ours.peakMiB), fmt(m.ours.settledMiB), fmt(m.theirs.peakMiB), fmt(m.theirs.settledMiB), m.settleSeconds, flag(m)]),
        ['RSS MiB (settled: N s after)', 'ours peak', 'ours settled', 'theirs peak', 'theirs settled', 'N', 'ours'],
      ),
    );
  }
  const c = result.load.cpu;
  if (c) parts.push(`other processes used ${fmt(c.others, 0)} core-s (${fmt(c.othersCores, 2)} cores on average) during the ${fmt(c.wallSeconds, 0)} s run; loadavg ${result.load.loadavgStart.join(' ')} -> ${result.load.loadavgEnd.join(' ')}`);
  return parts.join('\n');
}

function markdown(result) {
  const p = result.params;
  const m = result.machine;
  const v = result.versions;
  const c = result.load.cpu;
  const L = [];
  L.push('# Benchmarks: tsregistry vs the Go reference registry (distribution 2.8.2)');
  L.push('');
  L.push(`Generated by \`bench/side-by-side.js\` (\`npm run bench\`, or \`npm run build && node bench/side-by-side.js\`); raw numbers in \`bench/results/side-by-side.json\`. Every run rewrites this file down to the hand-written sections at its end.`);
  L.push('');
  if (result.note) {
    L.push(`> **Note:** ${result.note}`);
    L.push('');
  }
  if (c) {
    L.push(
      `Other processes on the machine used **${fmt(c.othersCores, 2)} of ${m.cpus} cores** on average during this run ` +
        `(${fmt(c.others, 0)} core-seconds over ${fmt(c.wallSeconds, 0)} s, from /proc/stat minus the benchmark, its tools and both registries; ` +
        `includes kernel writeback threads). Load average ${result.load.loadavgStart.join(' / ')} at the start, ${result.load.loadavgEnd.join(' / ')} at the end.`,
    );
    L.push('');
  }
  L.push('## Run');
  L.push('');
  L.push(
    mdTable(
      ['', ''],
      [
        ['date', result.date],
        ['duration', `${fmt(result.durationSeconds / 60, 1)} min`],
        ['machine', `${m.cpus} cores, ${m.cpuModel}, ${m.memGiB} GiB RAM, temp dir ${m.tmpDir} (${m.tmpFs}), ${v.kernel}`],
        [
          'free page reporting',
          result.freePageReportingGiBDuringRun === null
            ? 'off (no /sys/module/page_reporting)'
            : !result.freePageReportingKiBAtEnd
              ? 'no memory handed back to a host so far (the kernel can report free pages, but /sys/module/page_reporting/parameters/reported_kib is 0: no balloon device takes them)'
              : `on: a VM that hands the memory it frees back to its host (${result.freePageReportingGiBDuringRun} GiB during this run), so a page the page cache takes from free memory costs a fault on the host. Filling the page cache then costs ~1.1 s of system CPU per GiB instead of ~0.1 s (a cold 1 GiB read measured on the bench VM), which bounds the first read of a blob written with O_DIRECT (row 7 GET) and buffered writes (the disk test's "buffered")`,
        ],
        [
          'ours',
          `tsregistry ${v.ours} (git ${v.oursGit ?? '?'}), \`${p.serverCommand}\` (as npm start), node ${v.node}, local storage, SQLite index, log level warn, ` +
            (Object.keys(p.oursEnv ?? {}).length
              ? `**environment adds (BENCH_OURS_ENV): \`${envText(p.oursEnv)}\`**, the rest of the configuration the defaults (fsync on, uploads written with O_DIRECT unless changed above)`
              : 'the default configuration (fsync on, uploads written with O_DIRECT)'),
        ],
        ['theirs', `${v.dockerRegistry} (Debian package docker-registry), filesystem storage, delete enabled, blobdescriptor cache inmemory, log level warn, access log off`],
        [
          'clients',
          `Node http (rows 1, 2b and 4 push, 7 PUT; and the untimed hashed check before or after each timed pull); ${v.curl?.split(' (')[0] ?? 'curl'} into /dev/null (rows 2a, 2b, 7 GET); ${v.skopeo ?? 'skopeo'} (row 3); ${v.wrk?.split(' [')[0] ?? 'wrk'} for GET in rows 5a and 6 (${p.wrkThreads} threads, ${p.wrkConnections} connections, ${p.wrkSeconds} s per run) and 9 (a Lua script rotating over the blobs; ${p.pullers} connections, ${p.pullersSeconds} s per run, ${p.pullersPairs} pair(s)); ` +
            `for HEAD (5b) a raw-socket loop in the benchmark (${p.wrkConnections} connections, ${p.wrkSeconds} s), because wrk 4.1 and autocannon wait for a body after a HEAD answer and stall; ${v.openssl ?? 'openssl'} (row 7). ` +
            'wrk rather than autocannon: on 2 cores the load generator shares the CPU with the server under test, and wrk (C, epoll) spends far less CPU per request than a Node generator.',
        ],
        ['method', `${p.pairs} pair(s) per measurement, ours then theirs in each pair (A B A B ...); median, min and max over the pairs. Both registries on 127.0.0.1, storage in the same temp dir. Before every timed run (and the disk test) the benchmark waits until both registries have used no CPU for 300 ms (at most 5 s), so background work one of them does after its run (ours deletes a duplicate upload's staged copy 2 s after the commit; both collect garbage when idle) is not done inside the other's run, and \`sync\` writes back all dirty pages, untimed, so the writeback one run leaves behind does not land in the next one (the Go registry never fsyncs). Server CPU is user+sys of the server process (all threads) during the timed part.`],
      ],
      ['l', 'l'],
    ),
  );
  L.push('');
  L.push('## Summary (medians)');
  L.push('');
  L.push(
    mdTable(
      ['measurement', 'ours', 'theirs', 'ours / theirs', 'ours is ×as fast', 'target'],
      result.rows.map((r) => [
        r.title,
        `${fmt(r.ours.median, digits(r))} ${r.unit}`,
        `${fmt(r.theirs.median, digits(r))} ${r.unit}`,
        fmt(r.ratio, 2),
        `${fmt(r.speedup, 2)}×`,
        targetCell(r, true),
      ]),
    ),
  );
  L.push('');
  L.push('"ours / theirs" is the ratio of the medians as measured (for seconds, below 1 means ours is faster); "×as fast" turns it into a speed ratio.');
  L.push('');
  L.push('## Targets (issues 7 and 25)');
  L.push('');
  L.push(mdTable(['target', 'wanted', 'measured', 'verdict'], targetLines(result).map((r) => [r[0], r[1], r[2], r[3] === 'PASS' ? 'PASS' : '**FAIL**']), ['l', 'l', 'r', 'l']));
  L.push('');
  L.push('## Per measurement');
  for (const r of result.rows) {
    const d = digits(r);
    L.push('');
    L.push(`### ${r.title}`);
    L.push('');
    const rates = r.unit === 'req/s';
    const columns = r.columns ?? [];
    const extra = [...columns.map((c) => c.label), ...(rates ? ['p50 ms (median)', 'p99 ms (median)'] : []), 'client CPU s (median)'];
    const row = (id) => {
      const s = r[id];
      const runs = r.runs[id];
      const cells = [id, `${fmt(s.median, d)}`, `${fmt(s.min, d)}`, `${fmt(s.max, d)}`, runs.map((x) => fmt(x.value, d)).join(', '), fmt(s.serverCpuSecondsMedian, 2)];
      for (const c of columns) cells.push(columnCell(c, runs));
      if (rates) cells.push(fmt(median(runs.map((x) => x.p50ms)), 2), fmt(median(runs.map((x) => x.p99ms)), 2));
      cells.push(fmt(median(runs.map((x) => x.clientCpuSeconds)), 2));
      return cells;
    };
    L.push(mdTable(['', `median ${r.unit}`, 'min', 'max', 'runs in order', 'server CPU s (median)', ...extra], [row('ours'), row('theirs')]));
    L.push('');
    const verdict = r.target === null ? 'no target' : `**${r.pass ? 'PASS' : 'FAIL'}** (target ≥ ${r.target}×)`;
    L.push(`ours / theirs ${fmt(r.ratio, 2)}, ours ${fmt(r.speedup, 2)}× as fast: ${verdict}. Other processes: ${fmt(r.cpu.othersCores, 2)} cores on average during this measurement.`);
  }
  if (result.v1) {
    const x = result.v1;
    L.push('');
    L.push(`### 7. v1 layer PUT and GET, ${x.layerMiB} MiB (ours only) vs the machine's limits`);
    L.push('');
    L.push(
      mdTable(
        ['', 'median MiB/s', 'min', 'max', '% of min(sha256, disk)', 'target'],
        [
          ['v1 layer PUT', fmt(x.median.putMiBps), fmt(x.min.putMiBps), fmt(x.max.putMiBps), `${fmt(100 * x.putVsCeiling, 0)} %`, `≥ ${TARGET_CEILING * 100} %: ${x.putPass ? 'PASS' : '**FAIL**'}`],
          ['v1 layer GET', fmt(x.median.getMiBps), fmt(x.min.getMiBps), fmt(x.max.getMiBps), `${fmt(100 * x.getVsCeiling, 0)} %`, `≥ ${TARGET_CEILING * 100} %: ${x.getPass ? 'PASS' : '**FAIL**'}`],
          ['sha256 speed', fmt(x.median.sha256MiBps, 0), fmt(Math.min(...x.runs.map((r) => r.sha256MiBps)), 0), fmt(Math.max(...x.runs.map((r) => r.sha256MiBps)), 0), '', x.runs[0]?.sha256Source ?? ''],
          ['disk write speed', fmt(x.median.diskMiBps, 0), fmt(Math.min(...x.runs.map((r) => r.diskMiBps)), 0), fmt(Math.max(...x.runs.map((r) => r.diskMiBps)), 0), '', `${x.diskTestMiB} MiB in 1 MiB writes + fsync, temp dir: the faster of buffered and O_DIRECT writes`],
        ],
      ),
    );
    L.push('');
    L.push(
      `Per pair (limits measured right before each v1 run): ` +
        x.runs.map((r) => `sha256 ${fmt(r.sha256MiBps, 0)} / disk ${fmt(r.diskMiBps, 0)} (buffered ${fmt(r.diskBufferedMiBps, 0)}, O_DIRECT ${r.diskDirectMiBps === null || r.diskDirectMiBps === undefined ? '-' : fmt(r.diskDirectMiBps, 0)}) / PUT ${fmt(r.pushMiBps)} (server CPU ${fmt(r.pushServerCpuSeconds, 2)} s) / GET ${fmt(r.pullMiBps)}`).join('; ') +
        `. Note: a v1 layer PUT hashes every byte twice on the server (blob digest and v1 payload checksum).`,
    );
    L.push('');
    L.push(
      `Where the CPU went, per request (median of the pairs, user / system seconds), and the fastest the layer could have moved with that work on ${result.machine.cpus} cores: ` +
        'no faster than all cores kept busy with the server\'s and the client\'s CPU, nor than any one thread doing its own part. ' +
        'During the PUT the busiest other thread is the upload worker, which hashes every byte twice and writes it; during the GET the other threads are libuv\'s pool reading the file, ' +
        'and their system time is mostly the page-cache fill (see "free page reporting" above). A target above the bound is out of reach without less CPU work per byte or more cores.',
    );
    L.push('');
    const part = (runs, pick) => `${fmt(median(runs.map((r) => pick(r).user)), 2)} / ${fmt(median(runs.map((r) => pick(r).sys)), 2)}`;
    const cpuRow = (label, seconds, threads, client, bound, measured) => [
      label,
      fmt(median(x.runs.map(seconds)), 2),
      part(x.runs, (r) => threads(r).main),
      part(x.runs, (r) => threads(r).busiest),
      part(x.runs, (r) => threads(r).rest),
      fmt(median(x.runs.map(client)), 2),
      `${fmt(bound, 0)} MiB/s = ${fmt((100 * bound) / x.median.ceilingMiBps, 0)} %`,
      `${fmt(measured, 0)} MiB/s = ${fmt((100 * measured) / bound, 0)} % of the bound`,
    ];
    L.push(
      mdTable(
        ['', 'seconds', 'main thread', 'busiest other thread', 'other threads', 'client CPU s', `CPU bound on ${result.machine.cpus} cores (% of min(sha256, disk))`, 'measured'],
        [
          cpuRow('v1 layer PUT', (r) => r.pushSeconds, (r) => r.pushThreads, (r) => r.pushClientCpuSeconds, x.median.putBoundMiBps, x.median.putMiBps),
          cpuRow('v1 layer GET', (r) => r.pullSeconds, (r) => r.pullThreads, (r) => r.pullClientCpuSeconds, x.median.getBoundMiBps, x.median.getMiBps),
        ],
      ),
    );
  }
  L.push('');
  if (result.ceiling) {
    L.push('## Client ceiling');
    L.push('');
    L.push(
      'skopeo (row 3) and row 4\'s client against a *null registry* (a Node server that keeps the blobs in memory, ' +
        'drops uploads, hashes nothing and touches no disk; `bench/client-ceiling.js`; for row 4 it runs in its own process), ' +
        'run after both registries stopped. ' +
        'It does no storage work at all, so it shows how fast the client itself goes on this machine: where it is not 1.2× the Go registry, ' +
        'the client, not the server, bounds the row ("null / theirs" is the ratio a registry doing nothing would score). ' +
        'Rows 2a, 2b and 7 GET need no ceiling: curl into /dev/null receives several GB/s here, faster than either registry serves.',
    );
    L.push('');
    const lines = [];
    for (const [id, key] of [['skopeo-push', 'skopeoPush'], ['skopeo-pull', 'skopeoPull'], ['parallel', 'parallel']]) {
      const row = result.rows.find((r) => r.id === id);
      const c = result.ceiling[key];
      if (!row || !c) continue;
      const best = row.better === 'lower' ? row.theirs.median / c.median : c.median / row.theirs.median;
      lines.push([row.title, `${fmt(c.median, digits(row))} ${row.unit}`, `${fmt(row.ours.median, digits(row))} ${row.unit}`, `${fmt(row.theirs.median, digits(row))} ${row.unit}`, `${fmt(best, 2)}×`]);
    }
    L.push(mdTable(['measurement', 'null registry (median)', 'ours', 'theirs', 'null / theirs'], lines));
    L.push('');
    if (/\b1\.9\.3\b/.test(result.versions.skopeo ?? '')) L.push(SKOPEO_PROFILE, '');
  }
  L.push('## Memory');
  L.push('');
  const rss = result.rss;
  const rrows = [];
  if (rss.push) {
    rrows.push(['peak RSS during row 1 (VmHWM, reset before 1a and before 1b: the larger)', `${fmt(rss.push.ours.vmHwmMiB)} MiB`, `${fmt(rss.push.theirs.vmHwmMiB)} MiB`]);
    rrows.push(['max sampled VmRSS during row 1 (every 50 ms)', `${fmt(rss.push.ours.sampledMaxMiB)} MiB`, `${fmt(rss.push.theirs.sampledMaxMiB)} MiB`]);
  }
  rrows.push(['peak RSS over the whole run', `${fmt(rss.oursWholeRunPeakMiB)} MiB`, `${fmt(rss.theirsWholeRunPeakMiB)} MiB`]);
  L.push(mdTable(['', 'ours', 'theirs'], rrows));
  if (rss.perMeasurement.length) {
    L.push('');
    L.push(
      'Peak and settled RSS per measurement (MiB). Peak: VmHWM, reset through /proc/<pid>/clear_refs before the measurement and read when the server\'s last run of it ends. ' +
        'Settled: VmRSS that many seconds later (BENCH_SETTLE_SECONDS, or the row\'s own), with no request sent to that server meanwhile; ' +
        'each server\'s wait starts at its own last run, so ours settles while theirs runs its last one. ' +
        `Flagged where ours' peak is ≥ ${rss.limitMiB} MiB or its settled RSS ≥ ${rss.settledLimitMiB} MiB (or the row's own limits, named in the last column).`,
    );
    L.push('');
    const hwm = (x) => `${fmt(x.peakMiB)}${x.hwmReset ? '' : ' (since start: VmHWM reset refused)'}`;
    const flag = (m) => {
      const over = [m.peakOver && `peak ≥ ${m.limits.peakMiB}`, m.settledOver && `settled ≥ ${m.limits.settledMiB}`].filter(Boolean);
      const limits = m.ownLimits ? ` (limits ${m.limits.peakMiB} / ${m.limits.settledMiB})` : '';
      return over.length ? `**${over.join(', ')}**${limits}` : `ok${limits}`;
    };
    L.push(
      mdTable(
        ['measurement', 'ours peak', 'ours settled', 'theirs peak', 'theirs settled', 'settle s', 'ours'],
        rss.perMeasurement.map((m) => [m.title, hwm(m.ours), fmt(m.ours.settledMiB), hwm(m.theirs), fmt(m.theirs.settledMiB), String(m.settleSeconds), flag(m)]),
      ),
    );
  }
  L.push('');
  L.push(`Ours' RSS after each pair (MiB), per measurement (growth check: ${rss.growth.tolerance}; **${rss.growth.pass ? 'PASS' : 'FAIL'}**):`);
  L.push('');
  const byRow = new Map();
  for (const s of rss.afterEachPair) {
    if (!byRow.has(s.row)) byRow.set(s.row, []);
    byRow.get(s.row).push(s);
  }
  L.push(
    mdTable(
      ['measurement', 'ours after each pair', 'theirs after each pair', 'ours growth first → last'],
      [...byRow.entries()].map(([row, ss]) => {
        const g = rss.growth.perRow.find((x) => x.row === row);
        return [row, ss.map((s) => fmt(s.ours, 0)).join(', '), ss.map((s) => fmt(s.theirs, 0)).join(', '), `${fmt(g.growthMiB, 1)} MiB${g.grew ? ' (**grew**)' : ''}`];
      }),
    ),
  );
  L.push('');
  L.push('## How to run');
  L.push('');
  L.push('```sh');
  L.push('apt-get install -y --no-install-recommends docker-registry wrk   # skopeo and openssl too, if missing');
  L.push('npm run build && node bench/side-by-side.js                       # full run, 20-30 min on 2 cores');
  L.push(
    'BENCH_PAIRS=1 BENCH_BLOB_MB=64 BENCH_SKOPEO_MB=32 BENCH_PAR_MB=1 BENCH_SECONDS=2 BENCH_DISK_MB=64 BENCH_PULLERS=50 BENCH_PULLERS_SECONDS=5 ' +
      'BENCH_SETTLE_SECONDS=2 BENCH_PULLERS_SETTLE_SECONDS=3 BENCH_MD=- node bench/side-by-side.js  # quick check',
  );
  L.push('BENCH_ONLY=fresh-pull,pullers BENCH_MD=- BENCH_JSON=- BENCH_OURS_ENV="REGISTRY_STORAGE_LOCAL_DIRECT_WRITES=false MALLOC_ARENA_MAX=2" node bench/side-by-side.js  # A/B a setting of ours');
  L.push('BENCH_ONLY=parallel,manifest BENCH_PAIRS=3 BENCH_MD=- BENCH_JSON=- BENCH_THEIRS=ours BENCH_THEIRS_DIST=/tmp/ab/dist-base node bench/side-by-side.js  # A/B two builds of ours ("theirs": a copy of dist/ made before the change, next to a node_modules link)');
  L.push('BENCH_ONLY=pull BENCH_PAIRS=2 BENCH_MD=- BENCH_JSON=- BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node bench/side-by-side.js  # profile ours');
  L.push('node bench/cpuprofile-top.js /tmp/prof/*.cpuprofile                # top self-time functions, GC share');
  L.push('```');
  L.push('');
  L.push('All knobs are listed at the top of `bench/side-by-side.js`.');
  L.push('');
  return L.join('\n');
}

module.exports = { summaryText, markdown };
