'use strict';
// Benchmark: garbage collection over a large index while the server serves (issue 26).
//
// Generates an index directly (not pushed one by one) with BENCH_GC_BLOBS blobs (a small file each) and
// BENCH_GC_MANIFESTS manifests over BENCH_GC_REPOS repositories, three quarters of them tagged, each naming
// four blobs; a fifth of the blobs are referenced by nothing and everything is two hours old. Starts our
// server on it as `npm start` runs it, then drives a light load (manifest GETs by tag, small pushes) for
// BENCH_GC_SECONDS without a collection, then again while `npm run registry -- gc` collects from another
// process. Reports the collection's duration and what it freed, the peak RSS of the collecting process and
// of the server, and the p50/p99 latencies of both loads without and during the collection.
//
// Environment: BENCH_GC_BLOBS (default 100000), BENCH_GC_MANIFESTS (20000), BENCH_GC_REPOS (200),
// BENCH_GC_SECONDS (10). Needs `npm run build`. Results: bench/results/gc.json.

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { positiveInt, table, resultHeader } = require('./lib/basics');
const { Child, freePort, serverCommand, envWithoutRegistryVars, waitForServer } = require('./lib/processes');
const { RssSampler } = require('./lib/procfs');

const ROOT = path.resolve(__dirname, '..');
const RESULTS = path.join(__dirname, 'results', 'gc.json');
const BLOBS = positiveInt('BENCH_GC_BLOBS', 100_000);
const MANIFESTS = positiveInt('BENCH_GC_MANIFESTS', 20_000);
const REPOS = positiveInt('BENCH_GC_REPOS', 200);
const SECONDS = positiveInt('BENCH_GC_SECONDS', 10);
const REFS_PER_MANIFEST = 4;
const GET_CLIENTS = 8;
const PUSH_CLIENTS = 2;

const hexOf = (s) => crypto.createHash('sha256').update(s).digest('hex');

/** The index and blob files of a registry that has been used for a while. Returns the tags to GET. */
function generate(dir) {
  const { openDatabase } = require(path.join(ROOT, 'dist', 'index', 'db.js'));
  const db = openDatabase(path.join(dir, 'index.db'));
  const root = path.join(dir, 'blobs');
  const old = Date.now() - 2 * 3600_000;
  const pool = BLOBS - MANIFESTS; // configs and layers; the rest are manifest bytes
  const referenced = Math.floor(pool * 0.75); // the others are referenced by nothing
  const file = (hex, data) => {
    const d = path.join(root, 'blobs', 'sha256', hex.slice(0, 2));
    fs.mkdirSync(d, { recursive: true });
    fs.writeFileSync(path.join(d, hex), data);
  };
  const insBlob = db.prepare('INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, ?)');
  const insRepo = db.prepare('INSERT OR IGNORE INTO repositories (name, created_at) VALUES (?, ?)');
  const insLink = db.prepare('INSERT OR IGNORE INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?)');
  const insManifest = db.prepare(
    `INSERT INTO manifests (repo, digest, media_type, size, created_at) VALUES (?, ?, 'application/vnd.oci.image.manifest.v1+json', ?, ?)`,
  );
  const insRef = db.prepare('INSERT OR IGNORE INTO manifest_refs (repo, digest, child) VALUES (?, ?, ?)');
  const insTag = db.prepare('INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?)');
  const poolDigest = (i) => `sha256:${hexOf(`blob-${i}`)}`;
  const tags = [];
  db.transaction(() => {
    for (let i = 0; i < pool; i++) {
      const hex = poolDigest(i).slice(7);
      file(hex, Buffer.alloc(256, i % 251));
      insBlob.run(`sha256:${hex}`, 256, `blobs/sha256/${hex.slice(0, 2)}/${hex}`, old);
    }
    for (let m = 0; m < MANIFESTS; m++) {
      const repo = `bench/r${m % REPOS}`;
      const refs = Array.from({ length: REFS_PER_MANIFEST }, (_, k) => poolDigest((m * REFS_PER_MANIFEST + k) % referenced));
      const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', refs, n: m }));
      const hex = hexOf(body);
      file(hex, body);
      insBlob.run(`sha256:${hex}`, body.length, `blobs/sha256/${hex.slice(0, 2)}/${hex}`, old);
      insRepo.run(repo, old);
      insManifest.run(repo, `sha256:${hex}`, body.length, old);
      insLink.run(repo, `sha256:${hex}`, old);
      for (const r of refs) {
        insRef.run(repo, `sha256:${hex}`, r);
        insLink.run(repo, r, old);
      }
      if (m % 4 !== 3) {
        insTag.run(repo, `t${m}`, `sha256:${hex}`, old);
        tags.push({ repo, tag: `t${m}` });
      }
    }
  })();
  db.close();
  return { tags, unreferenced: pool - referenced };
}

/** Latencies (ms) of one kind of request, made by `clients` loops until `until`. */
async function load(clients, until, one) {
  const ms = [];
  let errors = 0;
  await Promise.all(
    Array.from({ length: clients }, async (_, c) => {
      for (let i = 0; Date.now() < until(); i++) {
        const t0 = performance.now();
        try {
          await one(c, i);
          ms.push(performance.now() - t0);
        } catch {
          errors++;
        }
      }
    }),
  );
  ms.sort((a, b) => a - b);
  const at = (q) => (ms.length ? ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] : NaN);
  return { requests: ms.length, errors, p50: at(0.5), p99: at(0.99) };
}

function traffic(base, tags, until) {
  const get = load(GET_CLIENTS, until, async (c, i) => {
    const { repo, tag } = tags[(c * 7919 + i * 104729) % tags.length];
    const res = await fetch(`${base}/v2/${repo}/manifests/${tag}`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`GET ${res.status}`);
  });
  const push = load(PUSH_CLIENTS, until, async () => {
    const data = crypto.randomBytes(1024);
    const digest = `sha256:${hexOf(data)}`;
    const post = await fetch(`${base}/v2/bench/push/blobs/uploads/`, { method: 'POST' });
    await post.arrayBuffer();
    const put = await fetch(new URL(`${post.headers.get('location')}?digest=${digest}`, base), { method: 'PUT', body: data });
    await put.arrayBuffer();
    if (put.status !== 201) throw new Error(`PUT ${put.status}`);
  });
  return Promise.all([get, push]);
}

async function main() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-gc-'));
  const server = new Child('registry');
  let collector;
  try {
    const header = resultHeader('gc');
    console.log(`gc benchmark ${header.date}, node ${header.node}, ${header.cpus} CPU(s) ${header.cpuModel ?? ''}`);
    let t0 = Date.now();
    const { tags, unreferenced } = generate(dir);
    console.log(`generated ${BLOBS} blobs, ${MANIFESTS} manifests in ${REPOS} repositories (${unreferenced} blobs unreferenced) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    const port = await freePort();
    const env = {
      ...envWithoutRegistryVars(),
      REGISTRY_HTTP_ADDR: `127.0.0.1:${port}`,
      REGISTRY_STORAGE_LOCAL_ROOT: path.join(dir, 'blobs'),
      REGISTRY_INDEX_PATH: path.join(dir, 'index.db'),
      REGISTRY_LOG_LEVEL: 'warn',
      REGISTRY_GC_INTERVAL: '0',
    };
    const command = serverCommand();
    server.spawn(process.execPath, command.args, { cwd: dir, env: { ...env, ...command.env } });
    const base = `http://127.0.0.1:${port}`;
    await waitForServer(base, server);
    const serverRss = new RssSampler(server.pid);

    const quietUntil = Date.now() + SECONDS * 1000;
    const [getQuiet, pushQuiet] = await traffic(base, tags, () => quietUntil);

    serverRss.enter('gc');
    collector = new Child('registry gc');
    t0 = Date.now();
    collector.spawn(process.execPath, [path.join(ROOT, 'dist', 'cli', 'registry.js'), 'gc'], { cwd: dir, env: { ...env, ...command.env } });
    const collectorRss = new RssSampler(collector.pid);
    let done = false;
    const finished = collector.exited.then((s) => {
      done = true;
      return s;
    });
    const [getGc, pushGc] = await traffic(base, tags, () => (done ? 0 : Infinity));
    const status = await finished;
    const gcSeconds = (Date.now() - t0) / 1000;
    collectorRss.stop?.();
    serverRss.stop?.();
    if (status.code !== 0) throw new Error(`registry gc exited ${status.code}\n${collector.logs()}`);
    const summary = collector.stdout.text.trim();

    const rows = [
      ['manifest GET, without gc', getQuiet.requests, getQuiet.errors, getQuiet.p50.toFixed(1), getQuiet.p99.toFixed(1)],
      ['manifest GET, during gc', getGc.requests, getGc.errors, getGc.p50.toFixed(1), getGc.p99.toFixed(1)],
      ['small push, without gc', pushQuiet.requests, pushQuiet.errors, pushQuiet.p50.toFixed(1), pushQuiet.p99.toFixed(1)],
      ['small push, during gc', pushGc.requests, pushGc.errors, pushGc.p50.toFixed(1), pushGc.p99.toFixed(1)],
    ];
    console.log(`\n${summary}`);
    console.log(`gc took ${gcSeconds.toFixed(1)} s (target < 60 s); peak RSS: collecting process ${collectorRss.maxMiB().toFixed(1)} MiB, server ${(serverRss.phaseMaxKiB.gc / 1024).toFixed(1)} MiB (target < 200 MB)`);
    console.log(table(rows, ['load', 'requests', 'errors', 'p50 ms', 'p99 ms']));
    const ratio = (a, b) => (b.p99 / a.p99).toFixed(2);
    console.log(`p99 during gc / without: manifest GET ${ratio(getQuiet, getGc)}x, small push ${ratio(pushQuiet, pushGc)}x (target <= 2x)`);
    fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
    fs.writeFileSync(
      RESULTS,
      JSON.stringify({ ...header, blobs: BLOBS, manifests: MANIFESTS, repos: REPOS, gcSeconds, summary, collectorPeakMiB: collectorRss.maxMiB(), serverPeakMiB: serverRss.phaseMaxKiB.gc / 1024, getQuiet, getGc, pushQuiet, pushGc }, null, 2) + '\n',
    );
  } finally {
    await collector?.stop();
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
