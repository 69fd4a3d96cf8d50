'use strict';
// Benchmark: push and pull one large v1 layer through a real server process.
//
// Starts our server as `npm start` runs it on a free port with a throwaway storage root and index, then per run:
//   PUT /v1/repositories/bench/v1-layer/ (the image list naming the new id) -> PUT /v1/images/<id>/json ->
//   PUT /v1/images/<id>/layer (chunked, timed; the bytes and their payload checksum made in memory
//   beforehand) -> PUT .../checksum
//   GET /v1/images/<id>/json -> GET /v1/images/<id>/layer with curl into /dev/null (timed), then the
//   same GET hashed and verified against the payload checksum (untimed)
// while sampling the server's RSS from /proc/<pid>/status. Reports median push/pull throughput,
// the server's peak RSS (sampled max VmRSS and the kernel's VmHWM), and for context the machine's
// sha256 speed and the temp dir's write+fsync speed.
//
// Environment:
//   BENCH_LAYER_MB        layer size in MiB (default 1024)
//   BENCH_RUNS            push+pull rounds, each with a new image id and new layer bytes (default 3)
//   BENCH_RSS_LIMIT_MB    peak RSS target in MiB, reported as PASS/FAIL (default 150; not an exit status)
//   BENCH_SERVER_NODE_ARGS extra node flags for the server, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
//   TMPDIR                where the temp dir is created (os.tmpdir())
//
// Plain CommonJS, Node built-ins (and curl), no build step. Results: bench/results/v1-layer.json.
// Run directly; when required (bench/side-by-side.js) it only exports its helpers.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { positiveInt, freePort, sleep, mibps, now, secondsSince, fmt, median, envWithoutRegistryVars, serverCommand, selfTreeCpuSeconds, curlGet, RSS_SAMPLE_MS, RssSampler, Child, premadeChunks, sha256Speed, diskWriteSpeed, readStatusKiB, cpuSeconds, threadCpuSeconds, cpuByThread, agent, request, expectStatus, streamBody, hashedGet, table, resultHeader } = require('./lib');

const ROOT = path.resolve(__dirname, '..');
const RESULTS = path.join(__dirname, 'results', 'v1-layer.json');

const MiB = 1024 * 1024;
const CHUNK = MiB;
const LAYER_MB = positiveInt('BENCH_LAYER_MB', 1024);
const RUNS = positiveInt('BENCH_RUNS', 3);
const RSS_LIMIT_MB = positiveInt('BENCH_RSS_LIMIT_MB', 150);
const DISK_TEST_MB = 512;
const REPO = 'bench/v1-layer';

// ---------------------------------------------------------------------------------------------
// Processes.

/** Our registry as a child process, local storage in a temp dir. */
class Server extends Child {
  constructor(tmp) {
    super('server');
    this.tmp = tmp;
  }

  async start() {
    const port = await freePort();
    this.base = `http://127.0.0.1:${port}`;
    // Any REGISTRY_* variable that is not a config key makes the server refuse to start: pass none through.
    const env = envWithoutRegistryVars();
    Object.assign(env, {
      REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
      REGISTRY_STORAGE_LOCAL_ROOT: path.join(this.tmp, 'blobs'),
      REGISTRY_INDEX_PATH: path.join(this.tmp, 'index.db'),
      REGISTRY_LOG_LEVEL: 'warn',
    });
    this.spawn(process.execPath, serverCommand().args, { cwd: ROOT, env });

    const deadline = Date.now() + 20_000;
    for (;;) {
      if (this.exitStatus) throw new Error(`server exited during start: ${JSON.stringify(this.exitStatus)}`);
      try {
        const res = await request(this.base, 'GET', '/v1/_ping', { timeoutMs: 1000 });
        if (res.status === 200) break;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error('server did not answer GET /v1/_ping within 20 s');
      await sleep(50);
    }
    return this.child.pid;
  }
}

// ---------------------------------------------------------------------------------------------
// HTTP client.






/** Stream the layer's chunks (chunked transfer encoding, as Docker 1.x sends it). */
const putLayer = (base, id, chunks) => {
  let i = 0;
  return streamBody(base, 'PUT', `/v1/images/${id}/layer`, { next: () => chunks[i++] ?? null }, null, 200);
};
/** GET the layer, hashing what arrives into `hash`. */
const getLayer = (base, id, hash) => hashedGet(base, `/v1/images/${id}/layer`, hash);

// ---------------------------------------------------------------------------------------------
// One push + pull round.

async function round(base, sampler, runIndex, layerBytes) {
  const id = crypto.randomBytes(32).toString('hex');
  const json = Buffer.from(
    JSON.stringify({
      id,
      created: new Date().toISOString(),
      container_config: { Cmd: ['/bin/sh', '-c', `#(nop) bench run ${runIndex}`] },
      architecture: 'amd64',
      os: 'linux',
      Size: layerBytes,
    }),
  );

  // Push. v1 images belong to a repository: the index call lists the image first, as Docker 1.x does,
  // so that the image calls (no token: authentication is off) act in the one repository that lists it.
  sampler.enter(`push:${runIndex}`);
  let res = await request(base, 'PUT', `/v1/repositories/${REPO}/`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ id }]) });
  expectStatus('PUT repository (image list)', res, 200);
  res = await request(base, 'PUT', `/v1/images/${id}/json`, { headers: { 'content-type': 'application/json' }, body: json });
  expectStatus('PUT json', res, 200);

  // The layer is made, and its payload checksum computed, before the timed PUT (as row 1 of the
  // side-by-side run makes its blob): the client then spends no CPU on them while the server is measured.
  const payload = crypto.createHash('sha256').update(json).update('\n');
  const chunks = premadeChunks(`${id}:${runIndex}`, layerBytes, payload);
  const checksum = 'sha256:' + payload.digest('hex');
  let t0 = now();
  let srvCpu0 = cpuSeconds(sampler.pid);
  let cliCpu0 = selfTreeCpuSeconds();
  let threads0 = threadCpuSeconds(sampler.pid);
  const pushed = await putLayer(base, id, chunks);
  const pushSeconds = secondsSince(t0);
  const pushServerCpu = cpuSeconds(sampler.pid) - srvCpu0;
  const pushClientCpu = selfTreeCpuSeconds() - cliCpu0;
  const pushThreads = cpuByThread(sampler.pid, threads0, threadCpuSeconds(sampler.pid));
  if (pushed.bytes !== layerBytes) throw new Error(`PUT layer: sent ${pushed.bytes} bytes, meant ${layerBytes}`);
  chunks.length = 0; // let the layer's memory go before the pull

  res = await request(base, 'PUT', `/v1/images/${id}/checksum`, { headers: { 'x-docker-checksum-payload': checksum } });
  expectStatus('PUT checksum', res, 200);

  // Pull.
  sampler.enter(`pull:${runIndex}`);
  res = await request(base, 'GET', `/v1/images/${id}/json`);
  expectStatus('GET json', res, 200);
  if (!res.body.equals(json)) throw new Error('GET json: body differs from the JSON pushed');
  if (Number(res.headers['x-docker-size']) !== layerBytes) throw new Error(`GET json: X-Docker-Size ${res.headers['x-docker-size']}, expected ${layerBytes}`);
  if (res.headers['x-docker-checksum-payload'] !== checksum) {
    throw new Error(`GET json: X-Docker-Checksum-Payload ${res.headers['x-docker-checksum-payload']}, expected ${checksum}`);
  }

  // Timed with curl into /dev/null (a hashing client would be what is measured, see curlGet).
  srvCpu0 = cpuSeconds(sampler.pid);
  cliCpu0 = selfTreeCpuSeconds();
  threads0 = threadCpuSeconds(sampler.pid);
  const timed = await curlGet(new URL(`/v1/images/${id}/layer`, base).href);
  const pullSeconds = timed.seconds;
  const pullServerCpu = cpuSeconds(sampler.pid) - srvCpu0;
  const pullClientCpu = selfTreeCpuSeconds() - cliCpu0;
  const pullThreads = cpuByThread(sampler.pid, threads0, threadCpuSeconds(sampler.pid));
  sampler.enter('between');
  if (timed.status !== 200 || timed.bytes !== layerBytes) throw new Error(`GET layer: ${timed.status}, ${timed.bytes} bytes, expected 200, ${layerBytes}`);

  // Then verify the bytes, untimed: sha256(json + "\n" + received layer) must equal the payload
  // checksum computed while sending.
  const received = crypto.createHash('sha256').update(res.body).update('\n');
  const pulled = await getLayer(base, id, received);
  if (pulled.contentLength !== layerBytes) throw new Error(`GET layer: Content-Length ${pulled.contentLength}, expected ${layerBytes}`);
  if (pulled.bytes !== layerBytes) throw new Error(`GET layer: received ${pulled.bytes} bytes, expected ${layerBytes}`);
  const pulledChecksum = 'sha256:' + received.digest('hex');
  if (pulledChecksum !== checksum) throw new Error(`GET layer: bytes differ from those sent (${pulledChecksum} != ${checksum})`);

  return {
    run: runIndex,
    imageId: id,
    checksum,
    pushSeconds,
    pushMiBps: mibps(layerBytes, pushSeconds),
    pushServerCpuSeconds: pushServerCpu,
    pushClientCpuSeconds: pushClientCpu,
    pushThreads,
    pullSeconds,
    pullMiBps: mibps(layerBytes, pullSeconds),
    pullServerCpuSeconds: pullServerCpu,
    pullClientCpuSeconds: pullClientCpu,
    pullThreads,
    maxRssPushMiB: sampler.phaseMaxMiB(`push:${runIndex}`),
    maxRssPullMiB: sampler.phaseMaxMiB(`pull:${runIndex}`),
  };
}

// ---------------------------------------------------------------------------------------------

/** Plain-text table; the first column is left-aligned, the others right-aligned unless `leftAll`. */
async function main() {
  serverCommand(); // fails early if the server is not built
  const layerBytes = LAYER_MB * MiB;
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-v1-layer-'));
  const server = new Server(tmp);
  let sampler = null;
  let cleaned = false;
  const cleanupSync = () => {
    if (cleaned) return;
    server.killNow();
    fs.rmSync(tmp, { recursive: true, force: true });
  };
  process.on('exit', cleanupSync);
  const onSignal = (sig) => {
    process.stderr.write(`\nv1-layer: ${sig}, stopping the server and removing ${tmp}\n`);
    cleanupSync();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  try {
    console.log(`v1-layer: ${LAYER_MB} MiB layer, ${RUNS} run(s); temp dir ${tmp}`);
    const sha = sha256Speed();
    const disk = diskWriteSpeed(tmp, DISK_TEST_MB);
    console.log(`  sha256: ${fmt(sha.MiBps, 0)} MiB/s (${sha.source})`);
    console.log(`  disk:   ${fmt(disk.MiBps, 0)} MiB/s (${disk.source})`);

    const pid = await server.start();
    sampler = new RssSampler(pid);
    await sleep(200);
    const idleRssMiB = readStatusKiB(pid, 'VmRSS') / 1024;
    console.log(`  server pid ${pid} at ${server.base}, idle RSS ${fmt(idleRssMiB)} MiB`);

    const runs = [];
    for (let i = 1; i <= RUNS; i++) {
      const r = await round(server.base, sampler, i, layerBytes);
      runs.push(r);
      console.log(
        `  run ${i}/${RUNS}: push ${fmt(r.pushMiBps)} MiB/s (${fmt(r.pushSeconds, 2)} s), pull ${fmt(r.pullMiBps)} MiB/s (${fmt(r.pullSeconds, 2)} s), ` +
          `max RSS push ${fmt(r.maxRssPushMiB)} / pull ${fmt(r.maxRssPullMiB)} MiB`,
      );
    }

    sampler.stop();
    const hwmKiB = readStatusKiB(pid, 'VmHWM');
    if (hwmKiB === null) throw new Error('could not read VmHWM: server process gone');
    const sampledMaxMiB = sampler.maxMiB();
    const vmHwmMiB = hwmKiB / 1024;
    // VmHWM is only refreshed by the kernel at some points (e.g. munmap), so it can trail the sampled max slightly.
    const peakRssMiB = Math.max(sampledMaxMiB, vmHwmMiB);
    agent.destroy();
    const stopped = await server.stop();
    if (stopped && (stopped.forced || stopped.code !== 0)) {
      console.warn(`  warning: server stop: ${JSON.stringify(stopped)}`);
    }

    const pushMedian = median(runs.map((r) => r.pushMiBps));
    const pullMedian = median(runs.map((r) => r.pullMiBps));
    const ceiling = Math.min(sha.MiBps, disk.MiBps);
    const rssPass = peakRssMiB < RSS_LIMIT_MB;

    const rows = runs.map((r) => [
      `run ${r.run}`,
      fmt(r.pushMiBps),
      fmt(r.pushSeconds, 2),
      `${fmt(r.pushServerCpuSeconds, 2)} / ${fmt(r.pushClientCpuSeconds, 2)}`,
      fmt(r.pullMiBps),
      fmt(r.pullSeconds, 2),
      `${fmt(r.pullServerCpuSeconds, 2)} / ${fmt(r.pullClientCpuSeconds, 2)}`,
      fmt(r.maxRssPushMiB),
      fmt(r.maxRssPullMiB),
    ]);
    rows.push(['median', fmt(pushMedian), '', '', fmt(pullMedian), '', '', '', '']);
    console.log('');
    console.log(`v1 layer push/pull, ${LAYER_MB} MiB layer, ${RUNS} run(s), node ${process.version}, ${os.cpus().length} CPU(s) ${os.cpus()[0]?.model ?? ''}`);
    console.log(table(rows, ['', 'push MiB/s', 'push s', 'CPU s srv/cli', 'pull MiB/s', 'pull s', 'CPU s srv/cli', 'max RSS push MiB', 'max RSS pull MiB']));
    console.log('');
    console.log(
      table(
        [
          ['server RSS idle', `${fmt(idleRssMiB)} MiB`],
          ['server RSS max sampled (every ~50 ms)', `${fmt(sampledMaxMiB)} MiB (${sampler.samples} samples)`],
          ['server VmHWM (kernel peak RSS)', `${fmt(vmHwmMiB)} MiB`],
          ['CPU s srv/cli', 'CPU seconds (user+sys) used by the server / this client during the timed request'],
          [`peak RSS target < ${RSS_LIMIT_MB} MiB`, rssPass ? 'PASS' : 'FAIL'],
          ['sha256 speed', `${fmt(sha.MiBps, 0)} MiB/s (${sha.source})`],
          ['disk write speed', `${fmt(disk.MiBps, 0)} MiB/s (${disk.source})`],
          ['median push / min(sha256, disk)', `${fmt((100 * pushMedian) / ceiling, 0)} %`],
          ['median pull / sha256', `${fmt((100 * pullMedian) / sha.MiBps, 0)} %`],
        ],
        ['context', 'value'],
        true,
      ),
    );

    const result = {
      ...resultHeader('v1-layer'),
      params: { layerMiB: LAYER_MB, runs: RUNS, chunkBytes: CHUNK, rssSampleMs: RSS_SAMPLE_MS, rssLimitMiB: RSS_LIMIT_MB },
      machine: { sha256: sha, diskWrite: disk },
      server: { idleRssMiB, sampledMaxRssMiB: sampledMaxMiB, vmHwmMiB, peakRssMiB, rssSamples: sampler.samples, stop: stopped },
      runs,
      summary: {
        pushMedianMiBps: pushMedian,
        pullMedianMiBps: pullMedian,
        peakRssMiB,
        rssTargetPass: rssPass,
        pushVsCeiling: pushMedian / ceiling,
        pullVsSha256: pullMedian / sha.MiBps,
      },
    };
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(RESULTS, JSON.stringify(result, null, 2) + '\n');
    console.log(`\nresults written to ${path.relative(process.cwd(), RESULTS) || RESULTS}`);
  } catch (err) {
    const logs = server.logs();
    if (logs) console.error(logs);
    throw err;
  } finally {
    sampler?.stop();
    agent.destroy();
    await server.stop().catch(() => undefined);
    fs.rmSync(tmp, { recursive: true, force: true });
    cleaned = true;
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

// bench/side-by-side.js reuses the round, the sampler and the machine measurements.
module.exports = { round };

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(`v1-layer: FAILED: ${err && err.stack ? err.stack : err}`);
      process.exit(1);
    },
  );
}
