'use strict';
// Benchmark: our registry and the Go reference registry (Debian `docker-registry`, distribution
// 2.8.2) side by side, in one run, on the same machine and disk (issue 7).
//
// Starts our server as `npm start` runs it (ours) and `docker-registry serve <config>` (theirs) on 127.0.0.1,
// free ports, local storage in one temp dir, then for every measurement runs ours and theirs
// alternately (A B A B ..., BENCH_PAIRS pairs) so machine drift hits both alike, with both servers idle
// and every dirty page written back (sync, untimed) before each timed run, and reports medians, min/max and the
// ratio ours/theirs:
//   1. blob push of a BENCH_BLOB_MB random blob: monolithic (POST, PUT ?digest= with the body,
//      Content-Length) and chunked (POST, one streamed PATCH, PUT ?digest= without a body);
//   2. blob pull of that blob: the GET hashed and verified (untimed), then the same GET with curl into
//      /dev/null (timed; a hashing client saturates a core before either registry does), so the timed
//      GET is served from the page cache by both;
//   3. skopeo push and pull of a BENCH_SKOPEO_MB image (OCI layout made here: gzip layer of random
//      data + 2 small layers), blob-info cache wiped before each skopeo run, fresh repository and
//      fresh oci: directory each run;
//   4. BENCH_PAR_BLOBS parallel monolithic pushes of distinct BENCH_PAR_MB blobs (one repository per run);
//   5. manifest GET and HEAD (by tag) requests per second at BENCH_CONNECTIONS connections (wrk);
//   6. tags/list requests per second on a repository with BENCH_TAGS tags (wrk);
//   7. ours only: v1 layer PUT and GET (bench/v1-layer.js's round) against the machine's limits,
//      sha256 speed (openssl speed -evp sha256) and disk write speed (1 GiB + fsync in the temp dir, the
//      faster of buffered and O_DIRECT writes),
//      each measured once per pair, interleaved with the v1 runs; and where the CPU went (main thread,
//      busiest other thread, the rest, the client) with the fastest that work allows on this machine's cores;
//   ceiling: after both registries have stopped, skopeo (rows 3a and 3b) and row 4's client against a
//      null registry that hashes and stores nothing (bench/client-ceiling.js): the best any server could do here;
//   8. peak RSS (VmHWM, reset through /proc/<pid>/clear_refs before row 1) of both servers during 1,
//      and ours over the whole run (VmRSS after every pair, to show it does not grow).
// Also the server CPU seconds per run and how much CPU other processes took meanwhile
// (/proc/stat minus this process tree and the two servers).
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
// Environment (quick run: BENCH_PAIRS=1 BENCH_BLOB_MB=64 BENCH_SKOPEO_MB=32 BENCH_PAR_MB=1 BENCH_SECONDS=2):
//   BENCH_PAIRS            A/B pairs per measurement (default 5)
//   BENCH_BLOB_MB          blob size for rows 1-2, MiB (default 1024)
//   BENCH_V1_MB            v1 layer size for row 7, MiB (default BENCH_BLOB_MB)
//   BENCH_DISK_MB          disk write test size, MiB (default 1024)
//   BENCH_SKOPEO_MB        big layer of the skopeo image, MiB (default 200)
//   BENCH_PAR_BLOBS        parallel pushes in row 4 (default 64)
//   BENCH_PAR_MB           size of each parallel blob, MiB (default 16)
//   BENCH_CONNECTIONS      wrk connections for rows 5-6 (default 64)
//   BENCH_THREADS          wrk threads (default: number of CPUs)
//   BENCH_SECONDS          wrk duration per run, seconds (default 10)
//   BENCH_TAGS             tags in the tags/list repository (default 100)
//   BENCH_RSS_LIMIT_MB     peak RSS target during a blob push, MiB (default 150)
//   BENCH_ONLY             comma list of groups to run: push,pull,skopeo,parallel,manifest,tags,v1,ceiling (default all)
//   BENCH_NOTE             free text put at the top of BENCHMARKS.md (e.g. "busy machine")
//   BENCH_MD               where to write the Markdown report ("-": nowhere)
//   BENCH_JSON             where to write the JSON results ("-": nowhere; default bench/results/side-by-side.json)
//   BENCH_SERVER_NODE_ARGS extra node flags for our server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
//   TMPDIR                 where the temp dir is created (os.tmpdir()); both registries store there
//
// Plain CommonJS, Node built-ins only (plus the tools above), no build step.

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { MiB, positiveInt, mibps, now, secondsSince, fmt, median, table } = require('./lib/basics');
const { makeBlob } = require('./lib/bytes');
const { agent, send, expectStatus, hashedGet, curlGet } = require('./lib/http');
const { rateRun, wrkScript } = require('./lib/load');
const { sha256Speed, diskWriteSpeed, cpuBoundMiBps, flushDirtyPages, loadavg, machineInfo, reportedToHostKiB } = require('./lib/machine');
const { smallImage, pushSmallImage, makeOciLayout, blobList } = require('./lib/oci-image');
const { serverCommand, tryVersion, requireTool, run } = require('./lib/processes');
const { CpuMeter, cpuSeconds, selfTreeCpuSeconds, waitForQuiet, resetPeakRss } = require('./lib/procfs');
const { Registry } = require('./lib/registry');
const { ACCEPT_MANIFEST, pushMonolithic, pushChunked, headBlob } = require('./lib/v2-client');
const { round } = require('./lib/v1-round');
const { measureCeiling } = require('./client-ceiling');

const ROOT = path.resolve(__dirname, '..');
const RESULTS = process.env.BENCH_JSON === '-' ? null : path.resolve(process.env.BENCH_JSON || path.join(__dirname, 'results', 'side-by-side.json'));
const SKOPEO_CACHE = '/var/lib/containers/cache/blob-info-cache-v1.boltdb';

const PAIRS = positiveInt('BENCH_PAIRS', 5);
const BLOB_MB = positiveInt('BENCH_BLOB_MB', 1024);
const V1_MB = positiveInt('BENCH_V1_MB', BLOB_MB);
const DISK_MB = positiveInt('BENCH_DISK_MB', 1024);
const SKOPEO_MB = positiveInt('BENCH_SKOPEO_MB', 200);
const PAR_BLOBS = positiveInt('BENCH_PAR_BLOBS', 64);
const PAR_MB = positiveInt('BENCH_PAR_MB', 16);
const CONNECTIONS = positiveInt('BENCH_CONNECTIONS', 64);
const THREADS = positiveInt('BENCH_THREADS', Math.max(1, os.cpus().length));
const SECONDS = positiveInt('BENCH_SECONDS', 10);
const TAGS = positiveInt('BENCH_TAGS', 100);
const RSS_LIMIT_MB = positiveInt('BENCH_RSS_LIMIT_MB', 150);
const GROUPS = ['push', 'pull', 'skopeo', 'parallel', 'manifest', 'tags', 'v1', 'ceiling'];
const ONLY = (process.env.BENCH_ONLY ?? '').split(',').map((s) => s.trim()).filter(Boolean);
const MD_PATH = process.env.BENCH_MD === '-' ? null : path.resolve(process.env.BENCH_MD || path.join(ROOT, 'BENCHMARKS.md'));
const TARGET_SPEEDUP = 1.2;
const TARGET_CEILING = 0.7;
const GROWTH_TOLERANCE = { MiB: 16, fraction: 0.1 };

const wants = (group) => ONLY.length === 0 || ONLY.includes(group);

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

// ---------------------------------------------------------------------------------------------
// Measurements. Each row: `fn(reg, pair)` returns {value, ...extra}; ours and theirs alternate.

/** Row definitions, in the order they run. `better`: 'higher' (throughput) or 'lower' (seconds). */
function rowDefs() {
  return [
    { id: 'push-mono', group: 'push', title: `1a. blob push ${BLOB_MB} MiB, monolithic (POST + PUT with body)`, unit: 'MiB/s', better: 'higher' },
    { id: 'push-chunked', group: 'push', title: `1b. blob push ${BLOB_MB} MiB, chunked (POST + one PATCH + PUT)`, unit: 'MiB/s', better: 'higher' },
    { id: 'pull', group: 'pull', title: `2. blob pull ${BLOB_MB} MiB (GET with curl, after an untimed verified GET)`, unit: 'MiB/s', better: 'higher' },
    { id: 'skopeo-push', group: 'skopeo', title: `3a. skopeo push, ${SKOPEO_MB} MiB image`, unit: 's', better: 'lower' },
    { id: 'skopeo-pull', group: 'skopeo', title: `3b. skopeo pull, ${SKOPEO_MB} MiB image (to a fresh oci: dir)`, unit: 's', better: 'lower' },
    { id: 'parallel', group: 'parallel', title: `4. ${PAR_BLOBS} parallel pushes of ${PAR_MB} MiB blobs (monolithic)`, unit: 'MiB/s', better: 'higher' },
    { id: 'manifest-get', group: 'manifest', title: `5a. manifest GET by tag, ${CONNECTIONS} connections`, unit: 'req/s', better: 'higher' },
    { id: 'manifest-head', group: 'manifest', title: `5b. manifest HEAD by tag, ${CONNECTIONS} connections`, unit: 'req/s', better: 'higher' },
    { id: 'tags', group: 'tags', title: `6. tags/list (${TAGS} tags), ${CONNECTIONS} connections`, unit: 'req/s', better: 'higher' },
  ];
}

async function main() {
  for (const g of ONLY) if (!GROUPS.includes(g)) throw new Error(`BENCH_ONLY: unknown group ${g}; known: ${GROUPS.join(', ')}`);
  serverCommand(); // fails early if the server is not built

  const versions = {
    node: process.version,
    ours: JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version,
    dockerRegistry: requireTool('docker-registry', ['--version'], 'docker-registry'),
    skopeo: wants('skopeo') ? requireTool('skopeo', ['--version'], 'skopeo') : tryVersion('skopeo', ['--version']),
    wrk: wants('manifest') || wants('tags') ? requireTool('wrk', ['--version'], 'wrk') : tryVersion('wrk', ['--version']),
    curl: wants('pull') || wants('v1') ? requireTool('curl', ['--version'], 'curl') : tryVersion('curl', ['--version']),
    openssl: tryVersion('openssl', ['version']),
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
  };
  const gitRev = tryVersion('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  const gitDirty = (spawnSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).stdout || '').trim() !== '';
  versions.oursGit = gitRev ? `${gitRev}${gitDirty ? ' (+ uncommitted changes in src/)' : ''}` : null;

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-side-by-side-'));
  const fsType = tryVersion('stat', ['-f', '-c', '%T', tmp]);
  const machine = machineInfo(tmp, fsType);
  const ours = new Registry('ours', path.join(tmp, 'ours'));
  const theirs = new Registry('theirs', path.join(tmp, 'theirs'));
  const regs = [ours, theirs];
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
  const rows = [];
  const rssAfterPair = [];
  const peak = {};
  let v1Result = null;
  let runCpu = null;
  try {
    console.log(`side-by-side: ${PAIRS} pair(s), blob ${BLOB_MB} MiB, temp dir ${tmp} (${fsType}), ${machine.cpus} CPU(s) ${machine.cpuModel}`);
    console.log(`  ours: node ${versions.node}, tsregistry ${versions.ours} ${versions.oursGit ?? ''}; theirs: ${versions.dockerRegistry}`);
    for (const r of regs) {
      await r.start();
      console.log(`  ${r.id.padEnd(6)} pid ${r.pid} at ${r.base}, idle RSS ${fmt(r.rssMiB())} MiB`);
    }
    const cpuAll = new CpuMeter(regs);

    // Runs `fn` for ours and theirs alternately, PAIRS times; records values, server CPU and RSS.
    const measure = async (def, fn, { perPairSetup } = {}) => {
      const row = { ...def, runs: { ours: [], theirs: [] } };
      rows.push(row);
      console.log(`\n${def.title}`);
      const cpu = new CpuMeter(regs);
      for (let pair = 1; pair <= PAIRS; pair++) {
        const setup = perPairSetup ? await perPairSetup(pair) : undefined;
        for (const reg of regs) {
          const quietWaitSeconds = await waitForQuiet(regs.map((r) => r.pid));
          flushDirtyPages();
          reg.sampler.enter(`${def.id}:${pair}`);
          const c0 = cpuSeconds(reg.pid);
          const client0 = selfTreeCpuSeconds();
          const r = await fn(reg, pair, setup);
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
        rssAfterPair.push({ row: def.id, pair, ours: ours.rssMiB(), theirs: theirs.rssMiB() });
      }
      row.cpu = cpu.stop();
      summarize(row);
      console.log(
        `  median ours ${fmt(row.ours.median, 2)} / theirs ${fmt(row.theirs.median, 2)} ${def.unit}: ours/theirs ${fmt(row.ratio, 2)}, ` +
          `ours ${fmt(row.speedup, 2)}x as fast (target ${TARGET_SPEEDUP}x: ${row.pass ? 'PASS' : 'FAIL'}); others' CPU ${fmt(row.cpu.othersCores, 2)} cores`,
      );
      return row;
    };

    const defs = Object.fromEntries(rowDefs().map((d) => [d.id, d]));
    const blobBytes = BLOB_MB * MiB;
    const pushed = { ours: [], theirs: [] }; // per pair: {repo, digest}

    // ---- 1. blob push (and 8: peak RSS during it) ----
    if (wants('push')) {
      const hwmReset = regs.map((r) => resetPeakRss(r.pid));
      for (const [id, push] of [
        ['push-mono', pushMonolithic],
        ['push-chunked', pushChunked],
      ]) {
        await measure(defs[id], async (reg, pair) => {
          const blob = makeBlob(`${id}:${reg.id}:${pair}:${Date.now()}`, blobBytes);
          const repo = `bench/${id}-${pair}`;
          const t = now();
          await push(reg, repo, blob);
          const seconds = secondsSince(t);
          const size = await headBlob(reg, repo, blob.digest);
          if (size !== blobBytes) throw new Error(`${reg.id} HEAD blob after push: size ${size}, expected ${blobBytes}`);
          if (id === 'push-mono' && wants('pull')) pushed[reg.id][pair] = { repo, digest: blob.digest };
          else reg.dropBlobFile(blob.digest);
          return { value: mibps(blobBytes, seconds), seconds };
        });
      }
      for (const r of regs) {
        peak[r.id] = { push: { vmHwmMiB: r.hwmMiB(), sampledMaxMiB: maxPhase(r.sampler, 'push-'), hwmReset: hwmReset[regs.indexOf(r)] } };
        resetPeakRss(r.pid);
      }
    }

    // ---- 2. blob pull ----
    if (wants('pull')) {
      await measure(defs.pull, async (reg, pair) => {
        let target = pushed[reg.id][pair];
        if (!target) {
          const blob = makeBlob(`pull:${reg.id}:${pair}:${Date.now()}`, blobBytes);
          target = { repo: `bench/pull-${pair}`, digest: blob.digest };
          await pushMonolithic(reg, target.repo, blob);
        }
        const blobPath = `/v2/${target.repo}/blobs/${target.digest}`;
        // A fast wrong answer must not count: the same GET, hashed, untimed. It comes first so that the
        // timed GET is a warm one for both registries: this machine pages out file pages unused for a
        // minute (DAMON), so the blob pushed in row 1 was sometimes read from disk and sometimes not.
        const hash = crypto.createHash('sha256');
        await hashedGet(reg.base, blobPath, hash);
        const digest = `sha256:${hash.digest('hex')}`;
        if (digest !== target.digest) throw new Error(`${reg.id} GET blob: bytes hash to ${digest}, expected ${target.digest}`);
        const url = reg.url(blobPath);
        const c0 = cpuSeconds(reg.pid);
        const client0 = selfTreeCpuSeconds();
        const got = await curlGet(url);
        const serverCpuSeconds = cpuSeconds(reg.pid) - c0;
        const clientCpuSeconds = selfTreeCpuSeconds() - client0;
        if (got.status !== 200 || got.bytes !== blobBytes) throw new Error(`${reg.id} GET blob: ${got.status}, ${got.bytes} bytes, expected 200, ${blobBytes}`);
        reg.dropBlobFile(target.digest);
        return { value: mibps(blobBytes, got.seconds), seconds: got.seconds, serverCpuSeconds, clientCpuSeconds };
      });
    }

    // ---- 3. skopeo push and pull ----
    if (wants('skopeo')) {
      const layoutDir = path.join(tmp, 'oci-big');
      const tl = now();
      const layout = await makeOciLayout(layoutDir, SKOPEO_MB, `${Date.now()}`);
      console.log(`\n  OCI layout ${layoutDir}: ${fmt(layout.bytes / MiB)} MiB of blobs, made in ${fmt(secondsSince(tl), 1)} s`);
      const want = blobList(layoutDir);
      const stamp = Date.now();
      const repoOf = (reg, pair) => `bench/skopeo-${stamp}-${pair}`;
      const clearCache = () => fs.rmSync(SKOPEO_CACHE, { force: true });
      await measure(defs['skopeo-push'], async (reg, pair) => {
        clearCache();
        const r = await run('skopeo', ['copy', '-q', '--dest-tls-verify=false', `oci:${layoutDir}:v1`, `docker://${reg.host}/${repoOf(reg, pair)}:v1`]);
        return { value: r.seconds, seconds: r.seconds };
      });
      await measure(defs['skopeo-pull'], async (reg, pair) => {
        clearCache();
        const dest = path.join(tmp, `pulled-${reg.id}-${pair}`);
        const r = await run('skopeo', ['copy', '-q', '--src-tls-verify=false', `docker://${reg.host}/${repoOf(reg, pair)}:v1`, `oci:${dest}:v1`]);
        const got = blobList(dest);
        fs.rmSync(dest, { recursive: true, force: true });
        if (got.join() !== want.join()) throw new Error(`${reg.id} skopeo round trip: blobs differ\n  pushed ${want.join(' ')}\n  pulled ${got.join(' ')}`);
        return { value: r.seconds, seconds: r.seconds };
      });
      fs.rmSync(layoutDir, { recursive: true, force: true });
    }

    // ---- 4. parallel pushes ----
    if (wants('parallel')) {
      await measure(defs.parallel, async (reg, pair) => {
        const blobs = [];
        for (let i = 0; i < PAR_BLOBS; i++) blobs.push(makeBlob(`par:${reg.id}:${pair}:${i}:${Date.now()}`, PAR_MB * MiB));
        const agent = new http.Agent({ keepAlive: true, maxSockets: PAR_BLOBS });
        const repo = `bench/parallel-${pair}`;
        try {
          const t = now();
          await Promise.all(blobs.map((b) => pushMonolithic(reg, repo, b, agent)));
          const seconds = secondsSince(t);
          for (const b of blobs) reg.dropBlobFile(b.digest);
          const total = PAR_BLOBS * PAR_MB * MiB;
          return { value: mibps(total, seconds), seconds };
        } finally {
          agent.destroy();
        }
      });
    }

    // ---- 5. manifest GET / HEAD, 6. tags/list ----
    if (wants('manifest') || wants('tags')) {
      const image = smallImage();
      const tagNames = Array.from({ length: TAGS }, (_, i) => `t${String(i).padStart(4, '0')}`);
      for (const reg of regs) {
        if (wants('manifest')) await pushSmallImage(reg, 'bench/small', image, ['v1']);
        if (wants('tags')) await pushSmallImage(reg, 'bench/tags', image, tagNames);
      }
      const getScript = wrkScript(path.join(tmp, 'manifest-get.lua'), 'GET', ACCEPT_MANIFEST);
      const tagsScript = wrkScript(path.join(tmp, 'tags.lua'), 'GET', null);
      for (const reg of regs) {
        // Check once what wrk will hammer: a wrong answer would be measured just as fast.
        if (wants('manifest')) {
          let res = await send(reg.url('/v2/bench/small/manifests/v1'), { agent: reg.agent, headers: { accept: ACCEPT_MANIFEST } });
          expectStatus(`${reg.id} GET manifest`, res, 200);
          if (!res.body.equals(image.manifest)) throw new Error(`${reg.id} GET manifest: body differs from what was pushed`);
          res = await send(reg.url('/v2/bench/small/manifests/v1'), { method: 'HEAD', agent: reg.agent, headers: { accept: ACCEPT_MANIFEST } });
          expectStatus(`${reg.id} HEAD manifest`, res, 200);
          if (res.headers['docker-content-digest'] !== image.manifestDigest) throw new Error(`${reg.id} HEAD manifest: digest ${res.headers['docker-content-digest']}`);
        }
        if (wants('tags')) {
          const res = await send(reg.url('/v2/bench/tags/tags/list'), { agent: reg.agent });
          expectStatus(`${reg.id} GET tags/list`, res, 200);
          const tags = JSON.parse(res.body.toString('utf8')).tags;
          if (!Array.isArray(tags) || tags.length !== TAGS) throw new Error(`${reg.id} tags/list: ${tags?.length} tags, expected ${TAGS}`);
        }
      }
      const load = { threads: THREADS, connections: CONNECTIONS, seconds: SECONDS };
      const wrkRow = (script, urlPath) => (reg) => rateRun(reg.url(urlPath).href, script, ACCEPT_MANIFEST, load);
      if (wants('manifest')) {
        await measure(defs['manifest-get'], wrkRow(getScript, '/v2/bench/small/manifests/v1'));
        await measure(defs['manifest-head'], wrkRow('HEAD', '/v2/bench/small/manifests/v1'));
      }
      if (wants('tags')) await measure(defs.tags, wrkRow(tagsScript, '/v2/bench/tags/tags/list'));
    }

    // ---- 7. v1 layer, ours only, interleaved with the machine's limits ----
    if (wants('v1')) {
      console.log(`\n7. v1 layer PUT/GET ${V1_MB} MiB (ours only) vs sha256 speed and disk write speed (${DISK_MB} MiB + fsync)`);
      const cpu = new CpuMeter(regs);
      const runs = [];
      for (let pair = 1; pair <= PAIRS; pair++) {
        await waitForQuiet([ours.pid]);
        const sha = sha256Speed();
        const d = diskWriteSpeed(tmp, DISK_MB);
        const disk = d.MiBps;
        flushDirtyPages();
        const r = await round(ours.base, ours.sampler, pair, V1_MB * MiB);
        ours.sampler.enter('between');
        const pushBoundMiBps = cpuBoundMiBps(V1_MB, machine.cpus, r.pushServerCpuSeconds, r.pushClientCpuSeconds, r.pushThreads);
        const pullBoundMiBps = cpuBoundMiBps(V1_MB, machine.cpus, r.pullServerCpuSeconds, r.pullClientCpuSeconds, r.pullThreads);
        runs.push({ pair, sha256MiBps: sha.MiBps, sha256Source: sha.source, diskMiBps: disk, diskBufferedMiBps: d.bufferedMiBps, diskDirectMiBps: d.directMiBps, ...r, pushBoundMiBps, pullBoundMiBps });
        rssAfterPair.push({ row: 'v1', pair, ours: ours.rssMiB(), theirs: theirs.rssMiB() });
        console.log(
          `  pair ${pair}/${PAIRS}: sha256 ${fmt(sha.MiBps, 0)} MiB/s, disk ${fmt(disk, 0)} MiB/s ` +
            `(buffered ${fmt(d.bufferedMiBps, 0)}, O_DIRECT ${d.directMiBps === null ? 'refused' : fmt(d.directMiBps, 0)}), ` +
            `v1 PUT ${fmt(r.pushMiBps)} MiB/s (server CPU ${fmt(r.pushServerCpuSeconds, 2)} s, CPU bound ${fmt(pushBoundMiBps, 0)}), ` +
            `GET ${fmt(r.pullMiBps)} MiB/s (server CPU ${fmt(r.pullServerCpuSeconds, 2)} s, CPU bound ${fmt(pullBoundMiBps, 0)})`,
        );
      }
      agent.destroy(); // the v1 round's keep-alive client
      const put = median(runs.map((r) => r.pushMiBps));
      const get = median(runs.map((r) => r.pullMiBps));
      const sha = median(runs.map((r) => r.sha256MiBps));
      const disk = median(runs.map((r) => r.diskMiBps));
      const ceiling = Math.min(sha, disk);
      v1Result = {
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
    }

    runCpu = cpuAll.stop();
    for (const r of regs) {
      r.sampler.stop();
      peak[r.id] = { ...(peak[r.id] ?? {}), wholeRun: { sampledMaxMiB: r.sampler.maxKiB / 1024, vmHwmSinceLastResetMiB: r.hwmMiB(), finalRssMiB: r.rssMiB() } };
    }
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

  let ceiling = null;
  if (wants('ceiling')) {
    console.log('\nClient ceiling: the clients of rows 3 and 4 against a null registry (in memory, no hashing, no disk)');
    ceiling = await measureCeiling({ runs: PAIRS, skopeoMiB: SKOPEO_MB, parBlobs: PAR_BLOBS, parMiB: PAR_MB, log: (line) => console.log(`  ${line}`) });
  }

  const growth = rssGrowth(rssAfterPair);
  const rss = {
    limitMiB: RSS_LIMIT_MB,
    push: peak.ours?.push ? { ours: peak.ours.push, theirs: peak.theirs.push } : null,
    oursWholeRunPeakMiB: Math.max(peak.ours?.push?.vmHwmMiB ?? 0, peak.ours?.wholeRun?.vmHwmSinceLastResetMiB ?? 0, peak.ours?.wholeRun?.sampledMaxMiB ?? 0),
    theirsWholeRunPeakMiB: Math.max(peak.theirs?.push?.vmHwmMiB ?? 0, peak.theirs?.wholeRun?.vmHwmSinceLastResetMiB ?? 0, peak.theirs?.wholeRun?.sampledMaxMiB ?? 0),
    afterEachPair: rssAfterPair,
    growth,
  };
  if (rss.push) {
    const oursPeak = Math.max(rss.push.ours.vmHwmMiB ?? 0, rss.push.ours.sampledMaxMiB ?? 0);
    rss.pushPeakOursMiB = oursPeak;
    rss.pushPeakTheirsMiB = Math.max(rss.push.theirs.vmHwmMiB ?? 0, rss.push.theirs.sampledMaxMiB ?? 0);
    rss.pushPass = oursPeak < RSS_LIMIT_MB;
  }
  const result = {
    benchmark: 'side-by-side',
    date: started.toISOString(),
    durationSeconds: secondsSince(t0),
    note: process.env.BENCH_NOTE || null,
    machine,
    versions,
    load: { loadavgStart: load0, loadavgEnd: loadavg(), cpu: runCpu },
    freePageReportingKiBAtEnd: reportedToHostKiB(),
    freePageReportingGiBDuringRun:
      machine.freePageReportingKiB === null ? null : Number((((reportedToHostKiB() ?? 0) - machine.freePageReportingKiB) / 1024 / 1024).toFixed(1)),
    params: {
      pairs: PAIRS,
      blobMiB: BLOB_MB,
      v1LayerMiB: V1_MB,
      diskTestMiB: DISK_MB,
      skopeoBigLayerMiB: SKOPEO_MB,
      parallelBlobs: PAR_BLOBS,
      parallelBlobMiB: PAR_MB,
      wrkConnections: CONNECTIONS,
      wrkThreads: THREADS,
      wrkSeconds: SECONDS,
      tags: TAGS,
      only: ONLY.length ? ONLY : GROUPS,
      serverCommand: serverCommand().command,
      order: 'per measurement: pair 1 ours, pair 1 theirs, pair 2 ours, ...',
    },
    units: { throughput: 'MiB/s (2^20 bytes per second)', memory: 'MiB (2^20 bytes)', cpu: 'core-seconds (user+sys)' },
    rows,
    v1: v1Result,
    rss,
    ceiling,
  };
  if (RESULTS) {
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(RESULTS, JSON.stringify(result, null, 2) + '\n');
  }

  const md = markdown(result);
  console.log('\n' + summaryText(result));
  if (MD_PATH) {
    fs.writeFileSync(MD_PATH, md);
    console.log(`\nreport written to ${path.relative(process.cwd(), MD_PATH) || MD_PATH}`);
  }
  if (RESULTS) console.log(`results written to ${path.relative(process.cwd(), RESULTS) || RESULTS}`);
}

/** Largest sampled RSS over the phases whose name starts with `prefix`. */
function maxPhase(sampler, prefix) {
  let max = null;
  for (const [phase, kib] of Object.entries(sampler.phaseMaxKiB)) {
    if (phase.startsWith(prefix) && (max === null || kib / 1024 > max)) max = kib / 1024;
  }
  return max;
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

// ---------------------------------------------------------------------------------------------
// Reports.

function mdTable(header, rows, align) {
  const a = align ?? header.map((_, i) => (i === 0 ? 'l' : 'r'));
  return [
    `| ${header.join(' | ')} |`,
    `| ${a.map((x) => (x === 'r' ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
  ].join('\n');
}

const digits = (row) => (row.unit === 's' ? 2 : row.unit === 'req/s' ? 0 : 1);

function targetLines(result) {
  const out = [];
  for (const row of result.rows) {
    out.push([
      row.title,
      `ours ≥ ${TARGET_SPEEDUP}× as fast`,
      `${fmt(row.speedup, 2)}×`,
      row.pass ? 'PASS' : 'FAIL',
    ]);
  }
  if (result.v1) {
    const v = result.v1;
    out.push([`7. v1 layer PUT ${v.layerMiB} MiB`, `≥ ${TARGET_CEILING * 100} % of min(sha256, disk)`, `${fmt(100 * v.putVsCeiling, 0)} %`, v.putPass ? 'PASS' : 'FAIL']);
    out.push([`7. v1 layer GET ${v.layerMiB} MiB`, `≥ ${TARGET_CEILING * 100} % of min(sha256, disk)`, `${fmt(100 * v.getVsCeiling, 0)} %`, v.getPass ? 'PASS' : 'FAIL']);
  }
  if (result.rss.push) {
    out.push([`8. ours peak RSS during the ${result.params.blobMiB} MiB pushes`, `< ${result.rss.limitMiB} MiB`, `${fmt(result.rss.pushPeakOursMiB)} MiB`, result.rss.pushPass ? 'PASS' : 'FAIL']);
  }
  out.push(['8. ours RSS, no growth over the run', result.rss.growth.tolerance, `${fmt(result.rss.growth.firstMiB)} → ${fmt(result.rss.growth.lastMiB)} MiB (max ${fmt(result.rss.growth.maxMiB)})`, result.rss.growth.pass ? 'PASS' : 'FAIL']);
  return out;
}

function summaryText(result) {
  const rows = result.rows.map((r) => [
    r.title,
    `${fmt(r.ours.median, digits(r))} ${r.unit}`,
    `${fmt(r.theirs.median, digits(r))} ${r.unit}`,
    fmt(r.ratio, 2),
    `${fmt(r.speedup, 2)}x`,
    r.pass ? 'PASS' : 'FAIL',
  ]);
  const parts = [
    `side-by-side, ${result.params.pairs} pair(s), medians (ours = tsregistry ${result.versions.ours}, theirs = ${result.versions.dockerRegistry})`,
    table(rows, ['measurement', 'ours', 'theirs', 'ours/theirs', 'ours as fast', `>=${TARGET_SPEEDUP}x`]),
    '',
    table(targetLines(result), ['target', 'wanted', 'measured', 'verdict']),
  ];
  if (result.rss.push) {
    parts.push(`peak RSS during row 1: ours ${fmt(result.rss.pushPeakOursMiB)} MiB, theirs ${fmt(result.rss.pushPeakTheirsMiB)} MiB`);
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
  L.push(`Generated by \`bench/side-by-side.js\` (\`npm run bench\`, or \`npm run build && node bench/side-by-side.js\`); raw numbers in \`bench/results/side-by-side.json\`. This file is overwritten by every run.`);
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
        ['ours', `tsregistry ${v.ours} (git ${v.oursGit ?? '?'}), \`${p.serverCommand}\` (as npm start), node ${v.node}, local storage (fsync on, uploads written with O_DIRECT: the defaults), SQLite index, log level warn`],
        ['theirs', `${v.dockerRegistry} (Debian package docker-registry), filesystem storage, delete enabled, blobdescriptor cache inmemory, log level warn, access log off`],
        [
          'clients',
          `Node http (rows 1, 4, 7 PUT; and the untimed hashed check before each timed pull); ${v.curl?.split(' (')[0] ?? 'curl'} into /dev/null (rows 2, 7 GET); ${v.skopeo ?? 'skopeo'} (row 3); ${v.wrk?.split(' [')[0] ?? 'wrk'} for GET in rows 5a and 6 (${p.wrkThreads} threads, ${p.wrkConnections} connections, ${p.wrkSeconds} s per run); ` +
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
      ['measurement', 'ours', 'theirs', 'ours / theirs', 'ours is ×as fast', `target ≥ ${TARGET_SPEEDUP}×`],
      result.rows.map((r) => [
        r.title,
        `${fmt(r.ours.median, digits(r))} ${r.unit}`,
        `${fmt(r.theirs.median, digits(r))} ${r.unit}`,
        fmt(r.ratio, 2),
        `${fmt(r.speedup, 2)}×`,
        r.pass ? 'PASS' : '**FAIL**',
      ]),
    ),
  );
  L.push('');
  L.push('"ours / theirs" is the ratio of the medians as measured (for seconds, below 1 means ours is faster); "×as fast" turns it into a speed ratio.');
  L.push('');
  L.push('## Targets (issue 7)');
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
    const extra = [...(rates ? ['p50 ms (median)', 'p99 ms (median)'] : []), 'client CPU s (median)'];
    const row = (id) => {
      const s = r[id];
      const runs = r.runs[id];
      const cells = [id, `${fmt(s.median, d)}`, `${fmt(s.min, d)}`, `${fmt(s.max, d)}`, runs.map((x) => fmt(x.value, d)).join(', '), fmt(s.serverCpuSecondsMedian, 2)];
      if (rates) cells.push(fmt(median(runs.map((x) => x.p50ms)), 2), fmt(median(runs.map((x) => x.p99ms)), 2));
      cells.push(fmt(median(runs.map((x) => x.clientCpuSeconds)), 2));
      return cells;
    };
    L.push(mdTable(['', `median ${r.unit}`, 'min', 'max', 'runs in order', 'server CPU s (median)', ...extra], [row('ours'), row('theirs')]));
    L.push('');
    L.push(`ours / theirs ${fmt(r.ratio, 2)}, ours ${fmt(r.speedup, 2)}× as fast: **${r.pass ? 'PASS' : 'FAIL'}** (target ≥ ${TARGET_SPEEDUP}×). Other processes: ${fmt(r.cpu.othersCores, 2)} cores on average during this measurement.`);
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
        'Rows 2 and 7 GET need no ceiling: curl into /dev/null receives several GB/s here, faster than either registry serves.',
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
    rrows.push(['peak RSS during row 1 (VmHWM, reset before row 1)', `${fmt(rss.push.ours.vmHwmMiB)} MiB`, `${fmt(rss.push.theirs.vmHwmMiB)} MiB`]);
    rrows.push(['max sampled VmRSS during row 1 (every 50 ms)', `${fmt(rss.push.ours.sampledMaxMiB)} MiB`, `${fmt(rss.push.theirs.sampledMaxMiB)} MiB`]);
  }
  rrows.push(['peak RSS over the whole run', `${fmt(rss.oursWholeRunPeakMiB)} MiB`, `${fmt(rss.theirsWholeRunPeakMiB)} MiB`]);
  L.push(mdTable(['', 'ours', 'theirs'], rrows));
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
  L.push('npm run build && node bench/side-by-side.js                       # full run, 10-20 min on 2 cores');
  L.push('BENCH_PAIRS=1 BENCH_BLOB_MB=64 BENCH_SKOPEO_MB=32 BENCH_PAR_MB=1 BENCH_SECONDS=2 BENCH_DISK_MB=64 BENCH_MD=- node bench/side-by-side.js  # quick check');
  L.push('BENCH_ONLY=pull BENCH_PAIRS=2 BENCH_MD=- BENCH_JSON=- BENCH_SERVER_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" node bench/side-by-side.js  # profile ours');
  L.push('node bench/cpuprofile-top.js /tmp/prof/*.cpuprofile                # top self-time functions, GC share');
  L.push('```');
  L.push('');
  L.push('All knobs are listed at the top of `bench/side-by-side.js`.');
  L.push('');
  return L.join('\n');
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
