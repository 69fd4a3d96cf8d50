'use strict';
// Benchmark: push and pull one large v1 layer through a real server process.
//
// Starts our server as `npm start` runs it on a free port with a throwaway storage root and index, then
// runs bench/lib/v1-round.js's round BENCH_RUNS times (image list, json, layer PUT timed, checksum; json,
// layer GET timed with curl, then hashed and verified untimed),
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

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { MiB, positiveInt, sleep, fmt, median, table, resultHeader } = require('./lib/basics');
const { agent, request } = require('./lib/http');
const { sha256Speed, diskWriteSpeed } = require('./lib/machine');
const { Child, freePort, serverCommand, envWithoutRegistryVars } = require('./lib/processes');
const { RSS_SAMPLE_MS, RssSampler, readStatusKiB } = require('./lib/procfs');
const { round } = require('./lib/v1-round');

const ROOT = path.resolve(__dirname, '..');
const RESULTS = path.join(__dirname, 'results', 'v1-layer.json');

const CHUNK = MiB;
const LAYER_MB = positiveInt('BENCH_LAYER_MB', 1024);
const RUNS = positiveInt('BENCH_RUNS', 3);
const RSS_LIMIT_MB = positiveInt('BENCH_RSS_LIMIT_MB', 150);
const DISK_TEST_MB = 512;

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

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (err) => {
      console.error(`v1-layer: FAILED: ${err && err.stack ? err.stack : err}`);
      process.exit(1);
    },
  );
}
