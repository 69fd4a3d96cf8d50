'use strict';
// OCI images the benchmarks push: a small one in memory (side-by-side rows 5-6) and a big OCI image
// layout on disk (row 3 and the client ceiling, for skopeo).

const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const { Readable, Transform } = require('node:stream');
const { pipeline } = require('node:stream/promises');
const { MiB } = require('./basics');
const { LayerGenerator } = require('./bytes');
const { send, expectStatus } = require('./http');
const { pushMonolithic } = require('./v2-client');

const sha256hex = (buf) => crypto.createHash('sha256').update(buf).digest('hex');

const MT_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const MT_CONFIG = 'application/vnd.oci.image.config.v1+json';
const MT_LAYER_GZIP = 'application/vnd.oci.image.layer.v1.tar+gzip';

/** ustar header for one regular file. */
function tarHeader(name, size) {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(size.toString(8).padStart(11, '0') + '\0', 124);
  h.write('00000000000\0', 136);
  h.write('        ', 148);
  h.write('0', 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148);
  return h;
}

function tarPadding(size) {
  return Buffer.alloc((512 - (size % 512)) % 512);
}

/** A gzip'd tar holding one small file, in memory: {blob, diffId}. */
function smallLayer(name, content) {
  const tar = Buffer.concat([tarHeader(name, content.length), content, tarPadding(content.length), Buffer.alloc(1024)]);
  return { blob: zlib.gzipSync(tar, { level: 1 }), diffId: `sha256:${sha256hex(tar)}` };
}

function imageConfig(diffIds) {
  return Buffer.from(
    JSON.stringify({
      created: '2024-01-01T00:00:00Z',
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Cmd: ['/bin/sh'] },
      rootfs: { type: 'layers', diff_ids: diffIds },
      history: diffIds.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'bench/side-by-side.js' })),
    }),
  );
}

function ociManifest(config, layers) {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MT_MANIFEST,
      config: { mediaType: MT_CONFIG, digest: `sha256:${sha256hex(config)}`, size: config.length },
      layers: layers.map((l) => ({ mediaType: MT_LAYER_GZIP, digest: l.digest, size: l.size })),
    }),
  );
}

/** The small image of rows 5-6: one 4 KiB layer, config, manifest. */
function smallImage() {
  const layer = smallLayer('hello.txt', crypto.randomBytes(4096));
  const config = imageConfig([layer.diffId]);
  const layerDesc = { digest: `sha256:${sha256hex(layer.blob)}`, size: layer.blob.length };
  const manifest = ociManifest(config, [layerDesc]);
  return {
    blobs: [
      { chunks: [layer.blob], bytes: layer.blob.length, digest: layerDesc.digest },
      { chunks: [config], bytes: config.length, digest: `sha256:${sha256hex(config)}` },
    ],
    manifest,
    manifestDigest: `sha256:${sha256hex(manifest)}`,
  };
}

async function pushSmallImage(reg, repo, image, tags) {
  for (const blob of image.blobs) await pushMonolithic(reg, repo, blob);
  for (const tag of tags) {
    const res = await send(reg.url(`/v2/${repo}/manifests/${tag}`), {
      method: 'PUT',
      agent: reg.agent,
      headers: { 'content-type': MT_MANIFEST },
      body: image.manifest,
    });
    expectStatus(`${reg.id} PUT manifest ${repo}:${tag}`, res, 201);
  }
}

/** Hashes (and counts) what passes. */
function hasher() {
  const t = new Transform({
    transform(chunk, _enc, cb) {
      t.hash.update(chunk);
      t.bytes += chunk.length;
      cb(null, chunk);
    },
  });
  t.hash = crypto.createHash('sha256');
  t.bytes = 0;
  return t;
}

/**
 * An OCI image layout like make-oci-layout.py --layers 2 --big-layer-mb N writes: two small gzip layers
 * and one gzip layer holding N MiB of random bytes (incompressible), config, manifest, index.json (tag v1).
 */
async function makeOciLayout(dir, bigMiB, seed) {
  const blobDir = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobDir, { recursive: true });
  const putBlob = (buf) => {
    const hex = sha256hex(buf);
    fs.writeFileSync(path.join(blobDir, hex), buf);
    return { digest: `sha256:${hex}`, size: buf.length };
  };
  const layers = [];
  const diffIds = [];
  for (let i = 0; i < 2; i++) {
    const gen = new LayerGenerator(`${seed}:small:${i}`, 4096);
    const l = smallLayer(`layer${i}.txt`, gen.next());
    layers.push(putBlob(l.blob));
    diffIds.push(l.diffId);
  }
  const size = bigMiB * MiB;
  async function* tarStream() {
    yield tarHeader('big.bin', size);
    const gen = new LayerGenerator(`${seed}:big`, size);
    for (let c; (c = gen.next()); ) yield c;
    yield tarPadding(size);
    yield Buffer.alloc(1024);
  }
  const inner = hasher();
  const outer = hasher();
  const tmpFile = path.join(blobDir, 'big.tmp');
  await pipeline(Readable.from(tarStream()), inner, zlib.createGzip({ level: 1 }), outer, fs.createWriteStream(tmpFile));
  const hex = outer.hash.digest('hex');
  fs.renameSync(tmpFile, path.join(blobDir, hex));
  layers.push({ digest: `sha256:${hex}`, size: outer.bytes });
  diffIds.push(`sha256:${inner.hash.digest('hex')}`);

  const config = imageConfig(diffIds);
  putBlob(config);
  const manifest = ociManifest(config, layers);
  const m = putBlob(manifest);
  const index = {
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: MT_MANIFEST, digest: m.digest, size: m.size, annotations: { 'org.opencontainers.image.ref.name': 'v1' }, platform: { architecture: 'amd64', os: 'linux' } }],
  };
  fs.writeFileSync(path.join(dir, 'index.json'), JSON.stringify(index));
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return { dir, manifestDigest: m.digest, bytes: layers.reduce((a, l) => a + l.size, 0) + config.length + manifest.length };
}

function blobList(layoutDir) {
  return fs.readdirSync(path.join(layoutDir, 'blobs', 'sha256')).sort();
}

module.exports = { smallImage, pushSmallImage, makeOciLayout, blobList };
