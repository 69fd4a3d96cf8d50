'use strict';
// Benchmark: what the v1 -> v2 bridge's layer analysis (gunzip + sha256 of the uncompressed tar, on the upload
// worker, in the same read of the bytes) adds to a v1 layer PUT. The same gzip layer is PUT to a server with
// protocols.bridge on (analyzed) and off (not analyzed), alternately, BENCH_RUNS times each; reported: the
// median PUT time of each and the difference. The layer is a gzip of real files (a tar of /usr/lib cut to
// BENCH_TAR_MB MiB, gzip -1), made once and kept in BENCH_LAYER_FILE.
//
// Environment:
//   BENCH_LAYER_FILE   the gzip layer to PUT (default /tmp/bench-v1-bridge-layer.tar.gz; made if missing)
//   BENCH_TAR_MB       uncompressed size of the layer made (default 2560: about 1 GiB of gzip)
//   BENCH_RUNS         PUTs per setting (default 3)
//
// Plain CommonJS, Node built-ins, no build step (npm run build first). Results: bench/results/v1-bridge-layer.json.

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { MiB, positiveInt, sleep, fmt, median, resultHeader } = require('./lib/basics');
const { request, expectStatus } = require('./lib/http');
const { Child, freePort, serverCommand, envWithoutRegistryVars } = require('./lib/processes');

const ROOT = path.resolve(__dirname, '..');
const RESULTS = path.join(__dirname, 'results', 'v1-bridge-layer.json');
const LAYER = process.env.BENCH_LAYER_FILE || path.join(os.tmpdir(), 'bench-v1-bridge-layer.tar.gz');
const TAR_MB = positiveInt('BENCH_TAR_MB', 2560);
const RUNS = positiveInt('BENCH_RUNS', 3);

function makeLayer() {
  if (fs.existsSync(LAYER)) return;
  console.log(`making ${LAYER}: tar of /usr/lib cut to ${TAR_MB} MiB, gzip -1 ...`);
  execFileSync('sh', ['-c', `tar -C / -cf - usr/lib 2>/dev/null | head -c ${TAR_MB * MiB} | gzip -1 > "${LAYER}.part" && mv "${LAYER}.part" "${LAYER}"`], { stdio: 'inherit' });
}

class Server extends Child {
  constructor(tmp, bridge) {
    super(`server-${bridge ? 'bridge' : 'plain'}`);
    this.tmp = tmp;
    this.bridge = bridge;
  }

  async start() {
    const port = await freePort();
    this.base = `http://127.0.0.1:${port}`;
    const env = Object.assign(envWithoutRegistryVars(), {
      REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
      REGISTRY_STORAGE_LOCAL_ROOT: path.join(this.tmp, 'blobs'),
      REGISTRY_INDEX_PATH: path.join(this.tmp, 'index.db'),
      REGISTRY_LOG_LEVEL: 'warn',
      REGISTRY_PROTOCOLS_BRIDGE: String(this.bridge),
    });
    this.spawn(process.execPath, serverCommand().args, { cwd: ROOT, env });
    const deadline = Date.now() + 20_000;
    for (;;) {
      try {
        if ((await request(this.base, 'GET', '/v1/_ping', { timeoutMs: 1000 })).status === 200) return;
      } catch {}
      if (Date.now() > deadline) throw new Error('server did not start');
      await sleep(50);
    }
  }
}

/** PUT json then the layer streamed from the file (chunked, as Docker 1.x); the layer PUT's seconds. */
async function pushOnce(base, size) {
  const id = crypto.randomBytes(32).toString('hex');
  let res = await request(base, 'PUT', '/v1/repositories/bench/bridge/', { headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ id }]) });
  expectStatus('PUT image list', res, 200);
  res = await request(base, 'PUT', `/v1/images/${id}/json`, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, created: new Date().toISOString() }) });
  expectStatus('PUT json', res, 200);
  const t0 = process.hrtime.bigint();
  await new Promise((resolve, reject) => {
    const req = http.request(`${base}/v1/images/${id}/layer`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream' } }, (r) => {
      r.resume();
      r.on('end', () => (r.statusCode === 200 ? resolve() : reject(new Error(`PUT layer ${r.statusCode}`))));
    });
    req.on('error', reject);
    fs.createReadStream(LAYER, { highWaterMark: MiB }).on('error', reject).pipe(req);
  });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { id, seconds, mibps: size / MiB / seconds };
}

/**
 * With the bridge on: wait until the image's layer is analyzed (in the PUT's pass, or from storage after it when
 * zlib could not keep up), so that no analysis runs during the next timed PUT. Seconds after the PUT ended.
 */
async function analyzedAfter(server, id) {
  const Database = require('better-sqlite3');
  const db = new Database(path.join(server.tmp, 'index.db'), { readonly: true, fileMustExist: true });
  const t0 = Date.now();
  try {
    const q = db.prepare("SELECT layer_format FROM v1_images WHERE id = ?").pluck();
    while (!q.get(id)) {
      if (Date.now() - t0 > 600_000) throw new Error('the layer was not analyzed within 10 minutes');
      await sleep(50);
    }
    return { seconds: (Date.now() - t0) / 1000, format: q.get(id) };
  } finally {
    db.close();
  }
}

async function main() {
  serverCommand();
  makeLayer();
  const size = fs.statSync(LAYER).size;
  fs.readFileSync(LAYER).length; // into the page cache before anything is timed
  console.log(`v1-bridge-layer: ${fmt(size / MiB, 0)} MiB gzip layer, ${RUNS} PUT(s) per setting, alternating`);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-v1-bridge-'));
  const servers = [new Server(path.join(tmp, 'on'), true), new Server(path.join(tmp, 'off'), false)];
  process.on('exit', () => {
    for (const s of servers) s.killNow();
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  for (const s of servers) await s.start();
  const times = { on: [], off: [] };
  const analysis = [];
  for (let i = 0; i < RUNS; i++) {
    for (const s of i % 2 ? [...servers].reverse() : servers) {
      const r = await pushOnce(s.base, size);
      times[s.bridge ? 'on' : 'off'].push(r.seconds);
      let note = '';
      if (s.bridge) {
        const a = await analyzedAfter(s, r.id);
        analysis.push(a.seconds);
        note = a.seconds < 0.2 ? `; analyzed in the same pass (${a.format})` : `; analyzed from storage ${fmt(a.seconds, 1)} s after the PUT (${a.format})`;
      }
      console.log(`  run ${i + 1} bridge ${s.bridge ? 'on ' : 'off'}: ${fmt(r.seconds, 2)} s (${fmt(r.mibps, 0)} MiB/s)${note}`);
    }
  }
  const on = median(times.on);
  const off = median(times.off);
  const extra = (on / off - 1) * 100;
  console.log(`median layer PUT: bridge on ${fmt(on, 2)} s, off ${fmt(off, 2)} s: analysis adds ${fmt(extra, 1)} % (target <= 15 %)`);
  fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
  fs.writeFileSync(RESULTS, JSON.stringify({ ...resultHeader('v1-bridge-layer'), layerBytes: size, runs: RUNS, seconds: times, medianOn: on, medianOff: off, extraPercent: extra, analyzedSecondsAfterPut: analysis }, null, 2) + '\n');
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
