'use strict';
// Benchmark: push and pull one large blob over the v2 API through the S3 storage driver.
//
// Starts s3rver (the npm devDependency, real-clients.md 7a) on 127.0.0.1 with a throwaway data dir and
// one bucket, then our server as `npm start` runs it (node flags included) on a free port with
// REGISTRY_STORAGE_DRIVER=s3 and the REGISTRY_STORAGE_S3_* variables pointing at it. Per run:
//   POST /v2/bench/s3/blobs/uploads/ -> one streamed PATCH with the whole blob (chunked, timed)
//   -> PUT ?digest= with an empty body (the commit: CompleteMultipartUpload, timed)
//   -> GET /v2/bench/s3/blobs/<digest> (timed, hashed and verified)
// while sampling the registry's RSS from /proc/<pid>/status (and s3rver's, for context). Reports
// push/pull throughput and the registry's peak RSS (sampled max VmRSS and the kernel's VmHWM).
//
// Environment:
//   BENCH_BLOB_MB          blob size in MiB (default 1024)
//   BENCH_RUNS             push+pull rounds, each with new blob bytes (default 2)
//   BENCH_RSS_LIMIT_MB     peak RSS target in MiB, reported as PASS/FAIL (default 200; not an exit status)
//   BENCH_S3_PART_MB       storage.s3.partSize in MiB (default: the registry's default, 8)
//   BENCH_S3_CONCURRENCY   storage.s3.concurrency (default: the registry's default, 4)
//   BENCH_SERVER_NODE_ARGS extra node flags for the registry, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
//   TMPDIR                 where the temp dir (s3rver data, index) is created (os.tmpdir())
//
// Plain CommonJS, Node built-ins only, no build step (run `npm run build` first). Results: bench/results/s3-blob.json.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { sleep, mibps, now, secondsSince, fmt, median, table, resultHeader } = require('./lib/basics');
const { LayerGenerator } = require('./lib/bytes');
const { agent, request, expectStatus, streamBody, hashedGet, expectPulled } = require('./lib/http');
const { sha256Speed } = require('./lib/machine');
const { Child, freePort, serverCommand, envWithoutRegistryVars } = require('./lib/processes');
const { RSS_SAMPLE_MS, RssSampler, readStatusKiB, cpuSeconds } = require('./lib/procfs');

const ROOT = path.resolve(__dirname, '..');
const S3RVER = path.join(ROOT, 'node_modules', 's3rver', 'bin', 's3rver.js');
const RESULTS = path.join(__dirname, 'results', 's3-blob.json');

const MiB = 1024 * 1024;
const CHUNK = MiB;
const BLOB_MB = positiveInt('BENCH_BLOB_MB', 1024);
const RUNS = positiveInt('BENCH_RUNS', 2);
const RSS_LIMIT_MB = positiveInt('BENCH_RSS_LIMIT_MB', 200);
const PART_MB = optionalPositiveInt('BENCH_S3_PART_MB');
const CONCURRENCY = optionalPositiveInt('BENCH_S3_CONCURRENCY');
const BUCKET = 'registry';
const REPO = 'bench/s3';

function positiveInt(name, def) {
  const v = optionalPositiveInt(name);
  return v === undefined ? def : v;
}

function optionalPositiveInt(name) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(raw)}`);
  return n;
}

// ---------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------
// Processes and their memory.

async function startS3rver(s3rver, dir) {
  const env = { ...process.env, NODE_OPTIONS: '--openssl-legacy-provider' };
  s3rver.spawn(process.execPath, [S3RVER, '-d', dir, '-a', '127.0.0.1', '-p', '0', '--silent', '--configure-bucket', BUCKET], { cwd: ROOT, env });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const m = /listening on [^\s:]+:(\d+)/.exec(s3rver.stdout.text);
    if (m) return `http://127.0.0.1:${m[1]}`;
    if (s3rver.exitStatus) throw new Error(`s3rver exited during start: ${JSON.stringify(s3rver.exitStatus)}`);
    if (Date.now() > deadline) throw new Error('s3rver did not start within 20 s');
    await sleep(50);
  }
}

async function startRegistry(server, tmp, endpoint) {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  // Any REGISTRY_* variable that is not a config key makes the server refuse to start: pass none through.
  const env = envWithoutRegistryVars();
  Object.assign(env, {
    REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
    REGISTRY_INDEX_PATH: path.join(tmp, 'index.db'),
    REGISTRY_LOG_LEVEL: 'warn',
    REGISTRY_STORAGE_DRIVER: 's3',
    REGISTRY_STORAGE_S3_ENDPOINT: endpoint,
    REGISTRY_STORAGE_S3_BUCKET: BUCKET,
    REGISTRY_STORAGE_S3_REGION: 'us-east-1',
    REGISTRY_STORAGE_S3_FORCE_PATH_STYLE: 'true',
    REGISTRY_STORAGE_S3_ACCESS_KEY_ID: 'S3RVER',
    REGISTRY_STORAGE_S3_SECRET_ACCESS_KEY: 'S3RVER',
  });
  if (PART_MB !== undefined) env.REGISTRY_STORAGE_S3_PART_SIZE = String(PART_MB * MiB);
  if (CONCURRENCY !== undefined) env.REGISTRY_STORAGE_S3_CONCURRENCY = String(CONCURRENCY);
  server.spawn(process.execPath, serverCommand().args, { cwd: ROOT, env });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (server.exitStatus) throw new Error(`registry exited during start: ${JSON.stringify(server.exitStatus)}`);
    try {
      const res = await request(base, 'GET', '/v2/', { timeoutMs: 1000 });
      if (res.status === 200 || res.status === 401) return base;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('registry did not answer GET /v2/ within 30 s');
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP client.






/** One streamed PATCH (chunked, no Content-Range: like docker and skopeo), hashing as it goes. */
async function patchBlob(base, location, gen, hash) {
  const { bytes, headers } = await streamBody(base, 'PATCH', location, gen, hash, 202);
  return { bytes, location: headers.location, range: headers.range };
}
const getBlob = hashedGet;

// ---------------------------------------------------------------------------------------------
// One push + pull round.

async function round(base, sampler, registryPid, runIndex, blobBytes) {
  sampler.enter(`push:${runIndex}`);
  let t0 = now();
  let cpu0 = cpuSeconds(registryPid);
  let res = await request(base, 'POST', `/v2/${REPO}/blobs/uploads/`);
  expectStatus('POST uploads', res, 202);
  const location = res.headers.location;
  if (!location) throw new Error('POST uploads: no Location');

  const sent = crypto.createHash('sha256');
  const patched = await patchBlob(base, location, new LayerGenerator(`${runIndex}:${Date.now()}`, blobBytes), sent);
  const patchSeconds = secondsSince(t0);
  if (patched.bytes !== blobBytes) throw new Error(`PATCH: sent ${patched.bytes} bytes, meant ${blobBytes}`);
  if (patched.range !== `0-${blobBytes - 1}`) throw new Error(`PATCH: Range ${patched.range}, expected 0-${blobBytes - 1}`);
  const digest = 'sha256:' + sent.digest('hex');

  const t1 = now();
  const putUrl = new URL(patched.location ?? location, base);
  putUrl.searchParams.set('digest', digest);
  res = await request(base, 'PUT', putUrl.pathname + putUrl.search);
  expectStatus('PUT ?digest=', res, 201);
  if (res.headers['docker-content-digest'] !== digest) throw new Error(`PUT: Docker-Content-Digest ${res.headers['docker-content-digest']}, expected ${digest}`);
  const commitSeconds = secondsSince(t1);
  const pushSeconds = secondsSince(t0);
  const pushCpu = cpuSeconds(registryPid) - cpu0;

  sampler.enter(`pull:${runIndex}`);
  const received = crypto.createHash('sha256');
  t0 = now();
  cpu0 = cpuSeconds(registryPid);
  const pulled = await getBlob(base, `/v2/${REPO}/blobs/${digest}`, received);
  const pullSeconds = secondsSince(t0);
  const pullCpu = cpuSeconds(registryPid) - cpu0;
  sampler.enter('between');
  expectPulled('GET blob', pulled, blobBytes, received, digest);

  return {
    run: runIndex,
    digest,
    patchSeconds,
    commitSeconds,
    pushSeconds,
    pushMiBps: mibps(blobBytes, pushSeconds),
    pushServerCpuSeconds: pushCpu,
    pullSeconds,
    pullMiBps: mibps(blobBytes, pullSeconds),
    pullServerCpuSeconds: pullCpu,
    maxRssPushMiB: sampler.phaseMaxMiB(`push:${runIndex}`),
    maxRssPullMiB: sampler.phaseMaxMiB(`pull:${runIndex}`),
  };
}

async function main() {
  serverCommand(); // fails early if the server is not built
  if (!fs.existsSync(S3RVER)) throw new Error(`${path.relative(process.cwd(), S3RVER)} not found: run \`npm install\` (s3rver is a devDependency)`);
  const blobBytes = BLOB_MB * MiB;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-s3-blob-'));
  const s3dir = path.join(tmp, 's3rver');
  fs.mkdirSync(s3dir);
  const s3rver = new Child('s3rver');
  const server = new Child('registry');
  let sampler = null;
  let s3Sampler = null;
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    server.killNow();
    s3rver.killNow();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  process.on('exit', cleanupSync);
  const onSignal = (sig) => {
    process.stderr.write(`\ns3-blob: ${sig}, stopping the registry and s3rver, removing ${tmp}\n`);
    cleanupSync();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    console.log(`s3-blob: ${BLOB_MB} MiB blob, ${RUNS} run(s); temp dir ${tmp}`);
    const sha = sha256Speed();
    console.log(`  sha256: ${fmt(sha.MiBps, 0)} MiB/s (${sha.source})`);
    const endpoint = await startS3rver(s3rver, s3dir);
    const base = await startRegistry(server, tmp, endpoint);
    sampler = new RssSampler(server.pid);
    s3Sampler = new RssSampler(s3rver.pid);
    await sleep(200);
    const idleRssMiB = readStatusKiB(server.pid, 'VmRSS') / 1024;
    const settings = `partSize ${PART_MB ?? 16} MiB, concurrency ${CONCURRENCY ?? 4}`;
    console.log(`  s3rver pid ${s3rver.pid} at ${endpoint}; registry pid ${server.pid} at ${base} (${settings}), idle RSS ${fmt(idleRssMiB)} MiB`);

    const runs = [];
    for (let i = 1; i <= RUNS; i++) {
      const r = await round(base, sampler, server.pid, i, blobBytes);
      runs.push(r);
      console.log(
        `  run ${i}/${RUNS}: push ${fmt(r.pushMiBps)} MiB/s (${fmt(r.pushSeconds, 2)} s: PATCH ${fmt(r.patchSeconds, 2)} s + PUT ${fmt(r.commitSeconds, 2)} s), ` +
          `pull ${fmt(r.pullMiBps)} MiB/s (${fmt(r.pullSeconds, 2)} s), max RSS push ${fmt(r.maxRssPushMiB)} / pull ${fmt(r.maxRssPullMiB)} MiB`,
      );
    }

    sampler.stop();
    s3Sampler.stop();
    const hwmKiB = readStatusKiB(server.pid, 'VmHWM');
    if (hwmKiB === null) throw new Error('could not read VmHWM: registry process gone');
    const sampledMaxMiB = sampler.maxMiB();
    const vmHwmMiB = hwmKiB / 1024;
    const peakRssMiB = Math.max(sampledMaxMiB, vmHwmMiB);
    const s3rverPeakMiB = Math.max(s3Sampler.maxMiB(), (readStatusKiB(s3rver.pid, 'VmHWM') ?? 0) / 1024);
    agent.destroy();
    const stopped = await server.stop();
    if (stopped && (stopped.forced || stopped.code !== 0)) console.warn(`  warning: registry stop: ${JSON.stringify(stopped)}`);
    await s3rver.stop();

    const pushMedian = median(runs.map((r) => r.pushMiBps));
    const pullMedian = median(runs.map((r) => r.pullMiBps));
    const rssPass = peakRssMiB < RSS_LIMIT_MB;
    const rows = runs.map((r) => [
      `run ${r.run}`,
      fmt(r.pushMiBps),
      fmt(r.pushSeconds, 2),
      fmt(r.patchSeconds, 2),
      fmt(r.commitSeconds, 2),
      fmt(r.pushServerCpuSeconds, 2),
      fmt(r.pullMiBps),
      fmt(r.pullSeconds, 2),
      fmt(r.pullServerCpuSeconds, 2),
      fmt(r.maxRssPushMiB),
      fmt(r.maxRssPullMiB),
    ]);
    rows.push(['median', fmt(pushMedian), '', '', '', '', fmt(pullMedian), '', '', '', '']);
    console.log('');
    console.log(`v2 blob push/pull on S3 (s3rver), ${BLOB_MB} MiB blob, ${RUNS} run(s), ${settings}, node ${process.version}, ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}`);
    console.log(
      table(rows, ['', 'push MiB/s', 'push s', 'PATCH s', 'PUT s', 'srv CPU s', 'pull MiB/s', 'pull s', 'srv CPU s', 'max RSS push MiB', 'max RSS pull MiB']),
    );
    console.log('');
    console.log(
      table(
        [
          ['registry RSS idle', `${fmt(idleRssMiB)} MiB`],
          ['registry RSS max sampled (every ~50 ms)', `${fmt(sampledMaxMiB)} MiB (${sampler.samples} samples)`],
          ['registry VmHWM (kernel peak RSS)', `${fmt(vmHwmMiB)} MiB`],
          [`peak RSS target < ${RSS_LIMIT_MB} MiB`, rssPass ? 'PASS' : 'FAIL'],
          ['s3rver peak RSS (context)', `${fmt(s3rverPeakMiB)} MiB`],
          ['PUT s', 'the commit: CompleteMultipartUpload (s3rver concatenates the parts on disk)'],
          ['sha256 speed', `${fmt(sha.MiBps, 0)} MiB/s (${sha.source})`],
        ],
        ['context', 'value'],
        true,
      ),
    );

    const result = {
      ...resultHeader('s3-blob'),
      params: {
        blobMiB: BLOB_MB,
        runs: RUNS,
        chunkBytes: CHUNK,
        partSizeMiB: PART_MB ?? 16,
        concurrency: CONCURRENCY ?? 4,
        rssSampleMs: RSS_SAMPLE_MS,
        rssLimitMiB: RSS_LIMIT_MB,
      },
      machine: { sha256: sha },
      server: { idleRssMiB, sampledMaxRssMiB: sampledMaxMiB, vmHwmMiB, peakRssMiB, rssSamples: sampler.samples, stop: stopped },
      s3rver: { peakRssMiB: s3rverPeakMiB },
      runs,
      summary: { pushMedianMiBps: pushMedian, pullMedianMiBps: pullMedian, peakRssMiB, rssTargetPass: rssPass },
    };
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(RESULTS, JSON.stringify(result, null, 2) + '\n');
    console.log(`\nresults written to ${path.relative(process.cwd(), RESULTS) || RESULTS}`);
  } catch (err) {
    for (const c of [server, s3rver]) {
      const logs = c.logs();
      if (logs) console.error(logs);
    }
    throw err;
  } finally {
    sampler?.stop();
    s3Sampler?.stop();
    agent.destroy();
    await server.stop().catch(() => undefined);
    await s3rver.stop().catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
    cleaned = true;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(`s3-blob: FAILED: ${err && err.stack ? err.stack : err}`);
    process.exit(1);
  },
);
