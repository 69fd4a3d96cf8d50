'use strict';
// Benchmark: our registry and the Go reference registry (Debian `docker-registry`, distribution
// 2.8.2) side by side, in one run, on the same machine and disk (issues 7 and 25).
//
// Starts our server as `npm start` runs it (ours) and `docker-registry serve <config>` (theirs) on 127.0.0.1,
// free ports, local storage in one temp dir, then for every measurement runs ours and theirs
// alternately (A B A B ..., BENCH_PAIRS pairs) so machine drift hits both alike, with both servers idle
// and every dirty page written back (sync, untimed) before each timed run, and reports medians, min/max and the
// ratio ours/theirs:
//   1. blob push of a BENCH_BLOB_MB random blob: monolithic (POST, PUT ?digest= with the body,
//      Content-Length) and chunked (POST, one streamed PATCH, PUT ?digest= without a body);
//   2a. blob pull of that blob: the GET hashed and verified (untimed), then the same GET with curl into
//      /dev/null (timed; a hashing client saturates a core before either registry does), so the timed
//      GET is served from the page cache by both;
//   2b. pull right after push: a fresh BENCH_BLOB_MB blob pushed (monolithic, timed on its own) and at once
//      pulled with curl into /dev/null (timed), nothing in between, so the pull reads what the push left
//      in the page cache (ours writes uploads with O_DIRECT by default); checked after with a hashed GET;
//   3. skopeo push and pull of a BENCH_SKOPEO_MB image (OCI layout made here: gzip layer of random
//      data + 2 small layers), blob-info cache wiped before each skopeo run, fresh repository and
//      fresh oci: directory each run;
//   4. BENCH_PAR_BLOBS parallel monolithic pushes of distinct BENCH_PAR_MB blobs (one repository per run);
//   5. manifest GET and HEAD (by tag) requests per second at BENCH_CONNECTIONS connections (wrk);
//   6. tags/list requests per second on a repository with BENCH_TAGS tags (wrk);
//   7. ours only: v1 layer PUT and GET (bench/v1-layer.js's round, bench/lib/v1-round.js) against the
//      machine's limits, sha256 speed (openssl speed -evp sha256) and disk write speed (1 GiB + fsync in
//      the temp dir, the faster of buffered and O_DIRECT writes),
//      each measured once per pair, interleaved with the v1 runs; and where the CPU went (main thread,
//      busiest other thread, the rest, the client) with the fastest that work allows on this machine's cores;
//   8. both servers' peak and settled RSS in every measurement: VmHWM reset through /proc/<pid>/clear_refs
//      before it and read when the server's last run of it ends (peak), VmRSS BENCH_SETTLE_SECONDS after
//      that with no request sent to that server (settled), flagged where ours' peak >= BENCH_RSS_LIMIT_MB
//      or settled >= BENCH_RSS_SETTLED_LIMIT_MB; and ours over the whole run (VmRSS after every pair, to
//      show it does not grow).
//   9. BENCH_PULLERS concurrent pullers (wrk with a Lua script rotating over the paths, bench/lib/pullers.js)
//      of 32 pre-pushed blobs of 1 KiB to 8 MiB for BENCH_PULLERS_SECONDS, BENCH_PULLERS_PAIRS pairs:
//      MiB/s, requests/s, errors, latencies, and RSS at its peak and BENCH_PULLERS_SETTLE_SECONDS after
//      every run; after the other rows, so what it leaves in ours' heap does not show in them;
//   ceiling: after both registries have stopped, skopeo (rows 3a and 3b) and row 4's client against a
//      null registry that hashes and stores nothing (bench/client-ceiling.js): the best any server could do here;
// Row 8 is no run of its own: each measurement records it. Also the server CPU seconds per run and how
// much CPU other processes took meanwhile (/proc/stat minus this process tree and the two servers).
//
// Request rates use wrk (Debian package `wrk`): a C load generator costs far less CPU per request than
// a Node one (autocannon), and on a 2-core machine the generator shares the cores with the server under
// test. wrk 4.1 (and autocannon) stall on HEAD (they wait for Content-Length bytes of body), so HEAD
// uses a small raw-socket loop here (runHeadLoad).
//
// Needs: `npm run build`; apt-get install -y --no-install-recommends docker-registry wrk (skopeo and
// openssl for rows 3 and 7). Writes BENCHMARKS.md (BENCH_MD, default <repo>/BENCHMARKS.md; "-" to skip)
// and bench/results/side-by-side.json.
//
// Environment (quick run: BENCH_PAIRS=1 BENCH_BLOB_MB=64 BENCH_SKOPEO_MB=32 BENCH_PAR_MB=1 BENCH_SECONDS=2
// BENCH_DISK_MB=64 BENCH_PULLERS=50 BENCH_PULLERS_SECONDS=5 BENCH_SETTLE_SECONDS=2 BENCH_PULLERS_SETTLE_SECONDS=3):
//   BENCH_PAIRS            A/B pairs per measurement (default 5)
//   BENCH_BLOB_MB          blob size for rows 1-2b, MiB (default 1024)
//   BENCH_V1_MB            v1 layer size for row 7, MiB (default BENCH_BLOB_MB)
//   BENCH_DISK_MB          disk write test size, MiB (default 1024)
//   BENCH_SKOPEO_MB        big layer of the skopeo image, MiB (default 200)
//   BENCH_PAR_BLOBS        parallel pushes in row 4 (default 64)
//   BENCH_PAR_MB           size of each parallel blob, MiB (default 16)
//   BENCH_CONNECTIONS      wrk connections for rows 5-6 (default 64)
//   BENCH_THREADS          wrk threads (default: number of CPUs)
//   BENCH_SECONDS          wrk duration per run, seconds (default 10)
//   BENCH_TAGS             tags in the tags/list repository (default 100)
//   BENCH_PULLERS          concurrent connections in row 9 (default 500)
//   BENCH_PULLERS_SECONDS  duration of each row 9 run, seconds (default 60)
//   BENCH_PULLERS_SETTLE_SECONDS  how long after each row 9 run its settled RSS is read (default 30)
//   BENCH_PULLERS_PAIRS    A/B pairs in row 9 (default min(BENCH_PAIRS, 3))
//   BENCH_RSS_LIMIT_MB     ours' peak RSS limit in every measurement, MiB (default 150)
//   BENCH_RSS_SETTLED_LIMIT_MB  ours' settled RSS limit after every measurement, MiB (default 120)
//   BENCH_SETTLE_SECONDS   how long after a server's last run of a measurement its settled RSS is read (default 10)
//   BENCH_ONLY             comma list of groups to run: push,pull,fresh-pull,skopeo,parallel,manifest,tags,v1,pullers,ceiling
//                          (default all)
//   BENCH_NOTE             free text put at the top of BENCHMARKS.md (e.g. "busy machine")
//   BENCH_MD               where to write the Markdown report ("-": nowhere)
//   BENCH_JSON             where to write the JSON results ("-": nowhere; default bench/results/side-by-side.json)
//   BENCH_SERVER_NODE_ARGS extra node flags for our server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
//   BENCH_OURS_ENV         KEY=VALUE items (separated by spaces or commas) added to our server's environment,
//                          to A/B a setting without editing code, e.g.
//                          "REGISTRY_STORAGE_LOCAL_DIRECT_WRITES=false MALLOC_ARENA_MAX=2"; the REGISTRY_* ones
//                          override the benchmark's own (the bench's own environment passes no REGISTRY_* through)
//   BENCH_THEIRS           "ours": "theirs" is our server as well, to A/B two settings or builds of ours in one
//                          interleaved run (the report's targets then mean nothing); with
//   BENCH_THEIRS_ENV       as BENCH_OURS_ENV, for that second server of ours
//   BENCH_THEIRS_NODE_ARGS as BENCH_SERVER_NODE_ARGS, for it (default: BENCH_SERVER_NODE_ARGS)
//   BENCH_THEIRS_DIST      another build to run for it: a copy of dist/ made before a change, in a dir that also
//                          links the repo's node_modules and package.json (mkdir /tmp/ab; ln -s $PWD/node_modules
//                          $PWD/package.json /tmp/ab; cp -r dist /tmp/ab/dist-base), so its requires resolve
//   TMPDIR                 where the temp dir is created (os.tmpdir()); both registries store there
//
// Layout: this file checks the tools, starts both registries, runs the rows in the order above and
// writes the reports. Each row is a module in bench/rows/ exporting { group (as in BENCH_ONLY), run(ctx) }:
// push.js (1a, 1b), pull.js (2a), fresh-pull.js (2b), skopeo.js (3a, 3b), parallel.js (4), manifest.js (5a, 5b), tags.js (6),
// v1.js (7), pullers.js (9), ceiling.js; memory.js is row 8, from what the others record in ctx. They share bench/lib/:
// options.js (the options above), ab.js (the A/B method), registry.js (both servers), report.js (the
// summary and BENCHMARKS.md), and HTTP, /proc, process, machine, image and load helpers that
// bench/v1-layer.js, bench/s3-blob.js and bench/client-ceiling.js use too. bench/lib/ requires nothing
// outside it.
//
// Plain CommonJS, Node built-ins only (plus the tools above), no build step.

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { now, secondsSince, fmt, envText } = require('./lib/basics');
const { loadavg, machineInfo, reportedToHostKiB } = require('./lib/machine');
const { serverCommand, tryVersion, requireTool } = require('./lib/processes');
const { CpuMeter } = require('./lib/procfs');
const { Registry } = require('./lib/registry');
const { summaryText, markdown } = require('./lib/report');
const opts = require('./lib/options');
const memory = require('./rows/memory');

const { ROOT, RESULTS, MD_PATH, PAIRS, BLOB_MB, ONLY, wants } = opts;

/** The rows, in the order they run; `afterRegistries`: runs once both registries have stopped. */
const ROWS = [
  require('./rows/push'),
  require('./rows/pull'),
  require('./rows/fresh-pull'),
  require('./rows/skopeo'),
  require('./rows/parallel'),
  require('./rows/manifest'),
  require('./rows/tags'),
  require('./rows/v1'),
  require('./rows/pullers'),
  require('./rows/ceiling'),
];
const GROUPS = ROWS.map((r) => r.group);

async function main() {
  for (const g of ONLY) if (!GROUPS.includes(g)) throw new Error(`BENCH_ONLY: unknown group ${g}; known: ${GROUPS.join(', ')}`);
  serverCommand(); // fails early if the server is not built

  const versions = {
    node: process.version,
    ours: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
    dockerRegistry: requireTool('docker-registry', ['--version'], 'docker-registry'),
    skopeo: wants('skopeo') ? requireTool('skopeo', ['--version'], 'skopeo') : tryVersion('skopeo', ['--version']),
    wrk: wants('manifest') || wants('tags') || wants('pullers') ? requireTool('wrk', ['--version'], 'wrk') : tryVersion('wrk', ['--version']),
    curl: wants('pull') || wants('fresh-pull') || wants('v1') ? requireTool('curl', ['--version'], 'curl') : tryVersion('curl', ['--version']),
    openssl: tryVersion('openssl', ['version']),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
  };
  const gitRev = tryVersion('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const gitDirty = (spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).stdout || '').trim() !== '';
  versions.oursGit = gitRev ? `${gitRev}${gitDirty ? ' (+ uncommitted changes in src/)' : ''}` : null;

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-side-by-side-'));
  const fsType = tryVersion('stat', ['-f', '-c', '%T', tmp]);
  const machine = machineInfo(tmp, fsType);
  const ours = new Registry('ours', path.join(tmp, 'ours'), opts.OURS_ENV);
  const theirs = new Registry('theirs', path.join(tmp, 'theirs'), opts.THEIRS_ENV, opts.THEIRS_SERVER);
  const regs = [ours, theirs];
  /** What the rows share: the servers and the temp dir, and what they record for the report. */
  const ctx = {
    tmp,
    machine,
    ours,
    theirs,
    regs,
    rows: [], // A/B rows as measured (lib/ab.js), in order
    rssAfterPair: [], // both servers' RSS after every pair (row 8)
    rssPerMeasurement: [], // both servers' peak and settled RSS per measurement (lib/ab.js, row 8)
    peak: {}, // per server: peak RSS over the whole run (row 8)
    pushed: { ours: [], theirs: [] }, // per pair: { repo, digest } of row 1a's blob, for row 2a
    v1: null, // row 7
    ceiling: null, // the client ceiling
  };
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    for (const r of regs) r.killNow();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  process.on('exit', cleanupSync);
  const onSignal = (sig) => {
    process.stderr.write(`\nside-by-side: ${sig}, stopping both registries and removing ${tmp}\n`);
    cleanupSync();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const started = new Date();
  const t0 = now();
  const load0 = loadavg();
  let runCpu = null;
  try {
    console.log(`side-by-side: ${PAIRS} pair(s), blob ${BLOB_MB} MiB, temp dir ${tmp} (${fsType}), ${machine.cpus} CPU(s) ${machine.cpuModel}`);
    console.log(`  ours: node ${versions.node}, tsregistry ${versions.ours} ${versions.oursGit ?? ''}; theirs: ${versions.dockerRegistry}`);
    if (Object.keys(opts.OURS_ENV).length) console.log(`  ours' environment adds (BENCH_OURS_ENV): ${envText(opts.OURS_ENV)}`);
    for (const r of regs) {
      await r.start();
      console.log(`  ${r.id.padEnd(6)} pid ${r.pid} at ${r.base}, idle RSS ${fmt(r.rssMiB())} MiB`);
    }
    const cpuAll = new CpuMeter(regs);

    for (const row of ROWS) if (!row.afterRegistries && wants(row.group)) await row.run(ctx);

    runCpu = cpuAll.stop();
    memory.recordWholeRun(ctx);
    for (const r of regs) {
      const st = await r.stop();
      if (st && (st.forced || (r.id === 'ours' && st.code !== 0))) console.warn(`  warning: ${r.id} stop: ${JSON.stringify(st)}`);
    }
  } catch (err) {
    for (const r of regs) {
      const logs = r.logs();
      if (logs) console.error(logs);
    }
    throw err;
  } finally {
    for (const r of regs) await r.stop().catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
    cleaned = true;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }

  for (const row of ROWS) if (row.afterRegistries && wants(row.group)) await row.run(ctx);

  const result = {
    benchmark: 'side-by-side',
    date: started.toISOString(),
    durationSeconds: secondsSince(t0),
    note: opts.NOTE,
    machine,
    versions,
    load: { loadavgStart: load0, loadavgEnd: loadavg(), cpu: runCpu },
    freePageReportingKiBAtEnd: reportedToHostKiB(),
    freePageReportingGiBDuringRun:
      machine.freePageReportingKiB === null ? null : Number((((reportedToHostKiB() ?? 0) - machine.freePageReportingKiB) / 1024 / 1024).toFixed(1)),
    params: {
      pairs: PAIRS,
      blobMiB: BLOB_MB,
      v1LayerMiB: opts.V1_MB,
      diskTestMiB: opts.DISK_MB,
      skopeoBigLayerMiB: opts.SKOPEO_MB,
      parallelBlobs: opts.PAR_BLOBS,
      parallelBlobMiB: opts.PAR_MB,
      wrkConnections: opts.CONNECTIONS,
      wrkThreads: opts.THREADS,
      wrkSeconds: opts.SECONDS,
      tags: opts.TAGS,
      settleSeconds: opts.SETTLE_SECONDS,
      pullers: opts.PULLERS,
      pullersSeconds: opts.PULLERS_SECONDS,
      pullersSettleSeconds: opts.PULLERS_SETTLE_SECONDS,
      pullersPairs: opts.PULLERS_PAIRS,
      only: ONLY.length ? ONLY : GROUPS,
      serverCommand: serverCommand().command,
      oursEnv: opts.OURS_ENV,
      order: 'per measurement: pair 1 ours, pair 1 theirs, pair 2 ours, ...',
    },
    units: { throughput: 'MiB/s (2^20 bytes per second)', memory: 'MiB (2^20 bytes)', cpu: 'core-seconds (user+sys)' },
    rows: ctx.rows,
    v1: ctx.v1,
    rss: memory.memoryResult(ctx),
    ceiling: ctx.ceiling,
  };
  if (RESULTS) {
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(RESULTS, JSON.stringify(result, null, 2) + '\n');
  }

  const md = markdown(result);
  console.log('\n' + summaryText(result));
  if (MD_PATH) {
    fs.writeFileSync(MD_PATH, md + handWrittenTail(MD_PATH));
    console.log(`\nreport written to ${path.relative(process.cwd(), MD_PATH) || MD_PATH}`);
  }
  if (RESULTS) console.log(`results written to ${path.relative(process.cwd(), RESULTS) || RESULTS}`);
}

/** What follows HAND_WRITTEN in the existing report (sections written by people, e.g. design measurements), kept across runs. */
const HAND_WRITTEN = '<!-- hand-written from here on: npm run bench keeps it -->';
function handWrittenTail(file) {
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  const at = old.indexOf(HAND_WRITTEN);
  return at < 0 ? '' : '\n' + old.slice(at);
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(`side-by-side: FAILED: ${err && err.stack ? err.stack : err}`);
      process.exit(1);
    },
  );
}
