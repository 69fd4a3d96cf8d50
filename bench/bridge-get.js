'use strict';
// Benchmark: a bridged manifest GET (a v1 tag served over v2, after its first synthesis) against a native one
// (a v2 push), by tag, through one in-process server (dist/), sequential keep-alive requests, alternating in
// blocks. Prints the median and p99 latency of each. Environment: BENCH_REQUESTS (default 2000 per kind).

const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const zlib = require('node:zlib');
const { positiveInt, fmt } = require('./lib/basics');
const { request } = require('./lib/http');

const N = positiveInt('BENCH_REQUESTS', 2000);
const ACCEPT = 'application/vnd.docker.distribution.manifest.v2+json';
const sha = (b) => 'sha256:' + crypto.createHash('sha256').update(b).digest('hex');

function tar(name, data) {
  const h = Buffer.alloc(512);
  h.write(name, 0);
  h.write('0000644\0', 100);
  h.write(data.length.toString(8).padStart(11, '0') + '\0', 124);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0' + '00', 257);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return Buffer.concat([h, data, Buffer.alloc((512 - (data.length % 512)) % 512), Buffer.alloc(1024)]);
}

async function main() {
  const { buildApp } = require('../dist/app');
  const { defaultConfig } = require('../dist/config/load');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-bridge-get-'));
  const app = await buildApp(defaultConfig({ http: { addr: '127.0.0.1:0' }, storage: { local: { root: path.join(dir, 'blobs'), fsync: false } }, index: { path: path.join(dir, 'index.db') }, log: { level: 'silent' } }));
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${app.server.address().port}`;
  try {
    // A v1 image, pushed the Docker 1.x way.
    const id = crypto.randomBytes(32).toString('hex');
    const json = Buffer.from(JSON.stringify({ id, created: '2015-01-01T00:00:00Z', container_config: { Cmd: ['/bin/sh'] } }));
    const layer = zlib.gzipSync(tar('f', crypto.randomBytes(4096)));
    await request(base, 'PUT', '/v1/repositories/bench/v1/', { headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ id }]) });
    await request(base, 'PUT', `/v1/images/${id}/json`, { body: json });
    await request(base, 'PUT', `/v1/images/${id}/layer`, { body: layer });
    const checksum = 'sha256:' + crypto.createHash('sha256').update(json).update('\n').update(layer).digest('hex');
    await request(base, 'PUT', `/v1/images/${id}/checksum`, { headers: { 'x-docker-checksum-payload': checksum } });
    await request(base, 'PUT', '/v1/repositories/bench/v1/tags/latest', { body: JSON.stringify(id) });
    // A native v2 image of the same shape.
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    for (const b of [config, layer]) await request(base, 'POST', `/v2/bench/v2/blobs/uploads/?digest=${sha(b)}`, { body: b });
    const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: ACCEPT, config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha(config) }, layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha(layer) }] }));
    const put = await request(base, 'PUT', '/v2/bench/v2/manifests/latest', { headers: { 'content-type': ACCEPT }, body: manifest });
    if (put.status !== 201) throw new Error(`manifest PUT ${put.status}`);
    const kinds = { bridged: '/v2/bench/v1/manifests/latest', native: '/v2/bench/v2/manifests/latest' };
    const ms = { bridged: [], native: [] };
    for (const p of Object.values(kinds)) if ((await request(base, 'GET', p, { headers: { accept: ACCEPT } })).status !== 200) throw new Error(p);
    for (let block = 0; block < 10; block++) {
      for (const [kind, p] of block % 2 ? Object.entries(kinds).reverse() : Object.entries(kinds)) {
        for (let i = 0; i < N / 10; i++) {
          const t0 = process.hrtime.bigint();
          const r = await request(base, 'GET', p, { headers: { accept: ACCEPT } });
          ms[kind].push(Number(process.hrtime.bigint() - t0) / 1e6);
          if (r.status !== 200) throw new Error(`${kind} ${r.status}`);
        }
      }
    }
    const q = (xs, f) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(f * xs.length))];
    for (const k of Object.keys(ms)) console.log(`${k.padEnd(8)} manifest GET by tag: p50 ${fmt(q(ms[k], 0.5), 3)} ms, p99 ${fmt(q(ms[k], 0.99), 3)} ms (${ms[k].length} requests)`);
  } finally {
    await app.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (err) => { console.error(err); process.exit(1); });
