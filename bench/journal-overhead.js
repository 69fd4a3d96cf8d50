'use strict';
// What writing the reference journal costs a push: this checkout against another build, side by side in
// one run (interleaved rounds, medians), so the machine's noise falls on both alike.
//
//   node bench/journal-overhead.js /path/to/baseline-checkout   (both built: npm run build)
//
// Per round and build: a fresh server; 150 small images pushed one after the other (config and layer by
// monolithic POST, then the manifest with a tag), then 5 s of manifest PUTs (new tags) from 16 clients.

const { createHash, randomBytes } = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Child, freePort, waitForServer } = require('./lib/processes');

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const IMAGES = 150;
const PUT_SECONDS = 5;
const PUT_CLIENTS = 16;

const sha = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

async function startServer(root) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-journal-'));
  const port = await freePort();
  const child = new Child(path.basename(root));
  const env = { ...process.env, REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`, REGISTRY_STORAGE_LOCAL_ROOT: path.join(dir, 'blobs'), REGISTRY_INDEX_PATH: path.join(dir, 'index.db'), REGISTRY_LOG_LEVEL: 'warn', REGISTRY_GC_INTERVAL: '0' };
  child.spawn(process.execPath, [path.join(root, 'dist', 'server.js')], { cwd: root, env });
  const url = `http://127.0.0.1:${port}`;
  await waitForServer(url, child);
  return { url, pid: child.pid, stop: async () => (await child.stop(), fs.rmSync(dir, { recursive: true, force: true })) };
}

async function pushBlob(url, repo, data) {
  const res = await fetch(`${url}/v2/${repo}/blobs/uploads/?digest=${sha(data)}`, { method: 'POST', body: data });
  if (res.status !== 201) throw new Error(`blob POST ${res.status}`);
}

function image(i) {
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n: i, r: randomBytes(8).toString('hex') }));
  const layer = randomBytes(4096);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
    }),
  );
  return { config, layer, manifest };
}

async function putManifest(url, repo, tag, manifest) {
  const res = await fetch(`${url}/v2/${repo}/manifests/${tag}`, { method: 'PUT', body: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  if (res.status !== 201) throw new Error(`manifest PUT ${res.status}`);
}

async function measure(root) {
  const srv = await startServer(root);
  try {
    const images = Array.from({ length: IMAGES }, (_, i) => image(i));
    const cpu0 = cpuMs(srv.pid);
    const t0 = process.hrtime.bigint();
    for (const [i, img] of images.entries()) {
      await pushBlob(srv.url, 'bench/app', img.config);
      await pushBlob(srv.url, 'bench/app', img.layer);
      await putManifest(srv.url, 'bench/app', `t${i}`, img.manifest);
    }
    const pushMs = Number(process.hrtime.bigint() - t0) / 1e6 / IMAGES;
    const pushCpuMs = (cpuMs(srv.pid) - cpu0) / IMAGES;
    const cpu1 = cpuMs(srv.pid);
    const one = images[0].manifest;
    let puts = 0;
    const until = Date.now() + PUT_SECONDS * 1000;
    await Promise.all(
      Array.from({ length: PUT_CLIENTS }, async (_, c) => {
        for (let n = 0; Date.now() < until; n++) {
          await putManifest(srv.url, 'bench/app', `c${c}-${n}`, one);
          puts++;
        }
      }),
    );
    return { pushMs, putsPerS: puts / PUT_SECONDS, pushCpuMs, putCpuMs: (cpuMs(srv.pid) - cpu1) / puts };
  } finally {
    await srv.stop();
  }
}

/** CPU time the process has used, ms (utime + stime from /proc, in clock ticks of 10 ms). */
function cpuMs(pid) {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main() {
  const baseline = process.argv[2];
  if (!baseline || !fs.existsSync(path.join(baseline, 'dist', 'server.js'))) {
    console.error('usage: node bench/journal-overhead.js <baseline checkout, built>');
    process.exit(2);
  }
  const current = path.resolve(__dirname, '..');
  const results = { baseline: [], current: [] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [name, root] of r % 2 ? [['current', current], ['baseline', baseline]] : [['baseline', baseline], ['current', current]]) {
      const m = await measure(root);
      results[name].push(m);
      console.log(
        `round ${r + 1} ${name}: ${m.pushMs.toFixed(2)} ms per small image push (server CPU ${m.pushCpuMs.toFixed(2)} ms), ` +
          `${m.putsPerS.toFixed(0)} manifest PUTs/s (server CPU ${m.putCpuMs.toFixed(3)} ms each)`,
      );
    }
  }
  // Each round's two runs are neighbours in time: the median of their ratios shrugs off the machine's drift.
  const ratio = (key) => median(results.current.map((c, i) => c[key] / results.baseline[i][key]));
  const pct = (r) => `${r >= 1 ? '+' : ''}${((r - 1) * 100).toFixed(1)} %`;
  console.log(
    `median of per-round ratios: small image push time ${pct(ratio('pushMs'))}, manifest PUT throughput ${pct(ratio('putsPerS'))}, ` +
      `server CPU per push ${pct(ratio('pushCpuMs'))}, per manifest PUT ${pct(ratio('putCpuMs'))} ` +
      `(medians: ${median(results.baseline.map((m) => m.pushMs)).toFixed(2)} -> ${median(results.current.map((m) => m.pushMs)).toFixed(2)} ms, ` +
      `${median(results.baseline.map((m) => m.putsPerS)).toFixed(0)} -> ${median(results.current.map((m) => m.putsPerS)).toFixed(0)} PUTs/s)`,
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
