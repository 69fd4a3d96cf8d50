'use strict';
// How fast can the clients of bench/side-by-side.js go at all? Runs them against a "null registry": a
// Node server that speaks just enough of the v2 API, keeps everything in memory, hashes nothing and
// writes nothing to disk. No registry can serve these clients faster than this on the machine, so if
// the Go registry is already close to it, "1.2x the Go registry" is out of reach for any server
// (issue 7). (Rows 2a, 2b and 7 GET are timed with curl, which is not the bottleneck.)
//
//   3a. skopeo push of the BENCH_SKOPEO_MB OCI image (bodies read and dropped);
//   3b. skopeo pull of it (served from memory);
//   4.  BENCH_PAR_BLOBS parallel monolithic pushes of BENCH_PAR_MB blobs, row 4's client code (the null
//       registry runs in a child process here, so client and server do not share a thread).
//
// Environment: BENCH_RUNS (default 5), BENCH_SKOPEO_MB (200), BENCH_PAR_BLOBS (64), BENCH_PAR_MB (16), TMPDIR.
// Run: node bench/client-ceiling.js (needs skopeo; skipped with a note otherwise), or as
// the last group of bench/side-by-side.js, which puts the ceilings next to both registries in BENCHMARKS.md.

const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { spawnSync, spawn } = require('node:child_process');
const { MiB, positiveInt, now, secondsSince, fmt, median, mibps } = require('./lib/basics');
const { makeBlob } = require('./lib/bytes');
const { flushDirtyPages } = require('./lib/machine');
const { makeOciLayout } = require('./lib/oci-image');
const { cpuSeconds } = require('./lib/procfs');
const { pushMonolithic } = require('./lib/v2-client');

const RUNS = positiveInt('BENCH_RUNS', 5);
const SKOPEO_MB = positiveInt('BENCH_SKOPEO_MB', 200);
const PAR_BLOBS = positiveInt('BENCH_PAR_BLOBS', 64);
const PAR_MB = positiveInt('BENCH_PAR_MB', 16);
const SKOPEO_CACHE = '/var/lib/containers/cache/blob-info-cache-v1.boltdb';


/** Content served by the null registry: blobs digest -> { bytes }, manifests ref -> { bytes, digest, type }. */
function nullRegistry(blobs, manifests) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const p = url.pathname;
    const drain = (then) => {
      req.on('data', () => undefined);
      req.on('end', then);
    };
    if (p === '/v2/' || p === '/v2') return res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    let m = p.match(/^\/v2\/(.+)\/blobs\/uploads\/([^/]*)$/);
    if (m) {
      const location = `/v2/${m[1]}/blobs/uploads/${m[2] || crypto.randomUUID()}`;
      return drain(() => {
        if (req.method === 'PUT') {
          const digest = url.searchParams.get('digest');
          return res.writeHead(201, { location: `/v2/${m[1]}/blobs/${digest}`, 'docker-content-digest': digest, 'content-length': '0' }).end();
        }
        res.writeHead(202, { location, range: '0-0', 'docker-upload-uuid': location.split('/').pop(), 'content-length': '0' }).end();
      });
    }
    m = p.match(/^\/v2\/(.+)\/manifests\/([^/]+)$/);
    if (m) {
      if (req.method === 'PUT') {
        const parts = [];
        req.on('data', (c) => parts.push(c));
        return req.on('end', () => {
          const digest = `sha256:${crypto.createHash('sha256').update(Buffer.concat(parts)).digest('hex')}`;
          res.writeHead(201, { location: `/v2/${m[1]}/manifests/${digest}`, 'docker-content-digest': digest, 'content-length': '0' }).end();
        });
      }
      const man = manifests.get(m[2]);
      if (!man) return res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      res.writeHead(200, { 'content-type': man.type, 'content-length': man.bytes.length, 'docker-content-digest': man.digest });
      return res.end(req.method === 'HEAD' ? undefined : man.bytes);
    }
    m = p.match(/^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/);
    if (m) {
      // Only the pull repositories have blobs: a push to any other one uploads everything, as into a fresh repository.
      const blob = m[1] === 'ceiling' || m[1] === 'ceiling/image' ? blobs.get(m[2]) : undefined;
      if (!blob) return res.writeHead(404, { 'content-length': '0' }).end();
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.bytes.length, 'docker-content-digest': m[2] });
      return res.end(req.method === 'HEAD' ? undefined : blob.bytes);
    }
    res.writeHead(404, { 'content-length': '0' }).end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** skopeo copy, timed; asynchronous, since this process is the server skopeo talks to. */
function skopeo(args) {
  fs.rmSync(SKOPEO_CACHE, { force: true });
  flushDirtyPages(); // as before every registry run in side-by-side.js
  return new Promise((resolve, reject) => {
    const t0 = now();
    const child = spawn('skopeo', ['copy', '-q', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => (err += c));
    child.on('close', (status) => (status === 0 ? resolve(secondsSince(t0)) : reject(new Error(`skopeo ${args.join(' ')}: ${err}`))));
  });
}

/** The null registry in a child process (this file with --serve); resolves with { base, pid, stop }. */
function startNullRegistryProcess() {
  const child = spawn(process.execPath, [__filename, '--serve'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill); // even if this process fails half-way, the server does not outlive it
  const stop = () => {
    process.off('exit', kill);
    kill();
  };
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => reject(new Error(`null registry exited during start: ${code ?? signal}`)));
    child.stdout.once('data', (line) => resolve({ base: `http://127.0.0.1:${Number(String(line).trim())}`, pid: child.pid, stop }));
  });
}

/**
 * Row 4 against the null registry: the same blobs, client code and untimed sync as side-by-side.js.
 * Returns { median, runs } in MiB/s and the null registry's CPU seconds per run.
 */
async function parallelCeiling({ runs, blobs: count, blobMiB }) {
  const nul = await startNullRegistryProcess();
  const reg = { id: 'null', base: nul.base, url: (p) => nul.base + p };
  const values = [];
  const serverCpu = [];
  try {
    for (let i = 0; i < runs; i++) {
      const blobs = [];
      for (let b = 0; b < count; b++) blobs.push(makeBlob(`ceiling-par:${i}:${b}:${Date.now()}`, blobMiB * MiB));
      const agent = new http.Agent({ keepAlive: true, maxSockets: count });
      flushDirtyPages(); // as before every registry run in side-by-side.js
      const c0 = cpuSeconds(nul.pid);
      const t = now();
      try {
        await Promise.all(blobs.map((b) => pushMonolithic(reg, `ceiling/parallel-${i}`, b, agent)));
      } finally {
        agent.destroy();
      }
      values.push(mibps(count * blobMiB * MiB, secondsSince(t)));
      serverCpu.push(cpuSeconds(nul.pid) - c0);
    }
  } finally {
    nul.stop();
  }
  return { median: median(values), runs: values, serverCpuSeconds: serverCpu };
}

/**
 * Medians against the null registry: { skopeoPush, skopeoPull } as { median, runs } in seconds (null
 * without skopeo) and { parallel } in MiB/s. `log` gets one line per row.
 */
async function measureCeiling({ runs = RUNS, skopeoMiB = SKOPEO_MB, parBlobs = PAR_BLOBS, parMiB = PAR_MB, log = console.log } = {}) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'client-ceiling-'));
  const blobs = new Map();
  const manifests = new Map();
  const server = await nullRegistry(blobs, manifests);
  const row = (xs) => ({ median: median(xs), runs: xs });
  try {
    const base = `http://127.0.0.1:${server.address().port}`;
    const result = { skopeoPush: null, skopeoPull: null, parallel: null };
    result.parallel = await parallelCeiling({ runs, blobs: parBlobs, blobMiB: parMiB });
    log(
      `4.  ${parBlobs} parallel pushes of ${parMiB} MiB, bodies dropped: median ${fmt(result.parallel.median)} MiB/s ` +
        `(${result.parallel.runs.map((x) => fmt(x, 0)).join(', ')}; null registry CPU ${result.parallel.serverCpuSeconds.map((x) => fmt(x, 2)).join(', ')} s)`,
    );
    if (spawnSync('skopeo', ['--version']).status !== 0) {
      log('3.  skopeo not installed: rows 3a/3b skipped');
      return result;
    }
    const layoutDir = path.join(tmp, 'oci');
    const layout = await makeOciLayout(layoutDir, skopeoMiB, 'ceiling');
    const blobDir = path.join(layoutDir, 'blobs', 'sha256');
    for (const hex of fs.readdirSync(blobDir)) blobs.set(`sha256:${hex}`, { bytes: fs.readFileSync(path.join(blobDir, hex)) });
    const entry = { bytes: blobs.get(layout.manifestDigest).bytes, digest: layout.manifestDigest, type: 'application/vnd.oci.image.manifest.v1+json' };
    manifests.set('v1', entry);
    manifests.set(layout.manifestDigest, entry);
    const host = base.slice('http://'.length);
    const pushes = [];
    const pullsS = [];
    for (let i = 0; i < runs; i++) {
      pushes.push(await skopeo(['--dest-tls-verify=false', `oci:${layoutDir}:v1`, `docker://${host}/ceiling/push-${i}:v1`]));
      const dest = path.join(tmp, `pulled-${i}`);
      pullsS.push(await skopeo(['--src-tls-verify=false', `docker://${host}/ceiling/image:v1`, `oci:${dest}:v1`]));
      fs.rmSync(dest, { recursive: true, force: true });
    }
    result.skopeoPush = row(pushes);
    result.skopeoPull = row(pullsS);
    log(`3a. skopeo push, ${skopeoMiB} MiB image, bodies dropped: median ${fmt(median(pushes), 2)} s (${pushes.map((x) => fmt(x, 2)).join(', ')})`);
    log(`3b. skopeo pull, ${skopeoMiB} MiB image from memory: median ${fmt(median(pullsS), 2)} s (${pullsS.map((x) => fmt(x, 2)).join(', ')})`);
    return result;
  } finally {
    server.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

module.exports = { measureCeiling };

if (require.main === module && process.argv[2] === '--serve') {
  // The child of parallelCeiling: print the port, serve until killed.
  nullRegistry(new Map(), new Map()).then((server) => console.log(server.address().port));
} else if (require.main === module) {
  console.log(`client ceiling: ${RUNS} runs each, ${os.cpus().length} CPU(s)`);
  measureCeiling().then(
    () => process.exit(0),
    (err) => {
      console.error(`client-ceiling: FAILED: ${err && err.stack ? err.stack : err}`);
      process.exit(1);
    },
  );
}
