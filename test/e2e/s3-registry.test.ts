import { randomBytes } from 'node:crypto';
import path from 'node:path';
import t, { type Test } from 'tap';
import { containersEnv } from '../helpers/containers';
import { http } from '../helpers/http';
import { layoutBlobs, layoutIndex, makeOciLayout, readLayoutBlob } from '../helpers/oci-layout';
import { startS3rver } from '../helpers/s3rver';
import { startRegistry, type TestRegistry } from '../helpers/server';
import { tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { imageChain, pullV1, pushV1 } from '../helpers/v1';
import { buildImage, pushImage, sha256 } from '../helpers/v2';

// The registry on storage.driver s3 (s3rver, 5 MiB parts): the v1 and v2 flows that pass on local
// storage pass unchanged, byte for byte, with blobs big enough to be multipart uploads.

const MiB = 1024 * 1024;
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

async function s3Registry(t: Test): Promise<TestRegistry> {
  const s3 = await startS3rver(t);
  return startRegistry(t, s3.overrides);
}

async function patch(reg: TestRegistry, loc: string, data: Buffer, start: number) {
  const r = await http(reg.url, 'PATCH', loc, data, {
    'content-range': `${start}-${start + data.length - 1}`,
    'content-type': 'application/octet-stream',
  });
  if (r.status !== 202) throw new Error(`PATCH ${start}: ${r.status} ${r.buf.toString()}`);
  return r;
}

t.test('v1 push and pull on S3, byte for byte, ranged layer reads', async (t) => {
  const reg = await s3Registry(t);
  const chain = imageChain(3, { emptyAt: 1, layerBytes: 6 * MiB + 321 });
  const pushed = await pushV1(reg.url, 's3/app', 'latest', chain);
  t.same(pushed.pushed, chain.map((i) => i.id), 'every image pushed');
  const pulled = await pullV1(reg.url, 's3/app', 'latest');
  t.same(pulled.map((p) => p.id), chain.map((i) => i.id), 'pulled root first');
  for (const [i, img] of chain.entries()) {
    t.ok(pulled[i]!.json.equals(img.json), `json ${i} byte for byte`);
    t.ok(pulled[i]!.layer.equals(img.layer), `layer ${i} byte for byte (${img.layer.length} bytes)`);
  }
  // A resumed layer download.
  const layer = chain[2]!.layer;
  const from = 5 * MiB - 10;
  const r = await http(reg.url, 'GET', `/v1/images/${chain[2]!.id}/layer`, undefined, { range: `bytes=${from}-` });
  t.equal(r.status, 206, 'resumed v1 layer pull');
  t.ok(r.buf.equals(layer.subarray(from)), 'the rest of the layer');
  const first = await http(reg.url, 'GET', `/v1/images/${chain[2]!.id}/layer`, undefined, { range: 'bytes=0-0' });
  t.equal(first.status, 206);
  t.ok(first.buf.equals(layer.subarray(0, 1)), 'bytes=0-0 is one byte');
  const second = await pushV1(reg.url, 's3/app', 'v2', chain);
  t.same(second.pushed, [], 'second push uploads nothing');
});

t.test('v2 push and pull on S3: monolithic, chunked PATCHes, ranges', async (t) => {
  const reg = await s3Registry(t);
  const image = buildImage({ layers: 2, layerBytes: 7 * MiB });
  const digest = await pushImage(reg.url, 's3/v2', 'v1', image);
  t.equal(digest, image.manifestDigest);
  const m = await http(reg.url, 'GET', '/v2/s3/v2/manifests/v1', undefined, { accept: ACCEPT });
  t.equal(m.status, 200);
  t.ok(m.buf.equals(image.manifest), 'manifest bytes');
  for (const blob of [image.config, ...image.layers]) {
    const b = await http(reg.url, 'GET', `/v2/s3/v2/blobs/${blob.digest}`);
    t.equal(b.status, 200);
    t.ok(b.buf.equals(blob.data), `blob ${blob.digest.slice(7, 19)} byte for byte (${blob.data.length} bytes)`);
  }
  const layer = image.layers[0]!;
  const ranged = await http(reg.url, 'GET', `/v2/s3/v2/blobs/${layer.digest}`, undefined, { range: `bytes=${5 * MiB - 1}-${5 * MiB}` });
  t.equal(ranged.status, 206);
  t.ok(ranged.buf.equals(layer.data.subarray(5 * MiB - 1, 5 * MiB + 1)), 'range across a part boundary');

  // Chunked upload: 1 MiB, 7 MiB, 3 bytes, 6 MiB, then the PUT with the digest.
  const pieces = [randomBytes(MiB), randomBytes(7 * MiB), randomBytes(3), randomBytes(6 * MiB)];
  const all = Buffer.concat(pieces);
  const post = await http(reg.url, 'POST', '/v2/s3/chunked/blobs/uploads/');
  t.equal(post.status, 202);
  const loc = new URL(post.headers.get('location')!, reg.url).pathname;
  let off = 0;
  for (const p of pieces) {
    const r = await patch(reg, loc, p, off);
    off += p.length;
    t.equal(r.headers.get('range'), `0-${off - 1}`, `Range after ${off} bytes`);
  }
  const put = await http(reg.url, 'PUT', `${loc}?digest=${sha256(all)}`);
  t.equal(put.status, 201, 'PUT ?digest= commits');
  const back = await http(reg.url, 'GET', `/v2/s3/chunked/blobs/${sha256(all)}`);
  t.ok(back.buf.equals(all), 'chunked blob byte for byte');
  const head = await http(reg.url, 'HEAD', `/v2/s3/chunked/blobs/${sha256(all)}`);
  t.equal(head.headers.get('content-length'), String(all.length));
});

t.test('a registry restarted in the middle of a chunked v2 upload on S3 continues it', async (t) => {
  let reg = await s3Registry(t);
  const pieces = [randomBytes(7 * MiB), randomBytes(12_345), randomBytes(6 * MiB), randomBytes(2 * MiB)];
  const all = Buffer.concat(pieces);
  const post = await http(reg.url, 'POST', '/v2/s3/restart/blobs/uploads/');
  const loc = new URL(post.headers.get('location')!, reg.url).pathname;
  await patch(reg, loc, pieces[0]!, 0);
  await patch(reg, loc, pieces[1]!, pieces[0]!.length);

  reg = await reg.restart();
  const status = await http(reg.url, 'GET', loc);
  t.equal(status.status, 204, 'the upload is still there');
  t.equal(status.headers.get('range'), `0-${pieces[0]!.length + pieces[1]!.length - 1}`, 'with its size');
  await patch(reg, loc, pieces[2]!, pieces[0]!.length + pieces[1]!.length);
  const start = all.length - pieces[3]!.length;
  const put = await http(reg.url, 'PUT', `${loc}?digest=${sha256(all)}`, pieces[3]!, {
    'content-range': `${start}-${all.length - 1}`,
    'content-type': 'application/octet-stream',
  });
  t.equal(put.status, 201, 'PUT with the last chunk commits after the restart');
  t.equal(put.headers.get('docker-content-digest'), sha256(all));
  const back = await http(reg.url, 'GET', `/v2/s3/restart/blobs/${sha256(all)}`);
  t.ok(back.buf.equals(all), 'byte for byte');

  // The same after a restart, with a wrong digest: refused, nothing stored.
  const post2 = await http(reg.url, 'POST', '/v2/s3/restart/blobs/uploads/');
  const loc2 = new URL(post2.headers.get('location')!, reg.url).pathname;
  await patch(reg, loc2, pieces[0]!, 0);
  reg = await reg.restart();
  const wrong = sha256(Buffer.from('not these bytes'));
  const bad = await http(reg.url, 'PUT', `${loc2}?digest=${wrong}`);
  t.equal(bad.status, 400, 'wrong digest after a restart');
  t.equal(bad.json?.errors?.[0]?.code, 'DIGEST_INVALID');
  t.equal((await http(reg.url, 'HEAD', `/v2/s3/restart/blobs/${wrong}`)).status, 404, 'nothing under the claimed digest');
  t.equal((await http(reg.url, 'HEAD', `/v2/s3/restart/blobs/${sha256(pieces[0]!)}`)).status, 404, 'nor under the real one');
});

t.test('skopeo: OCI layout -> registry on S3 -> OCI layout is byte-identical', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const reg = await s3Registry(t);
  const env = await containersEnv(t);
  const work = tempDir(t, 'skopeo-s3-');
  const src = path.join(work, 'src');
  const back = path.join(work, 'back');
  // 12 MiB of incompressible content per layer: multipart uploads (two full parts and a tail).
  const img = makeOciLayout(src, { tag: 'v1', layers: 2, layerBytes: 12 * MiB, seed: 55 });
  const ref = `docker://${reg.host}/skopeo/s3:v1`;

  let r = await env.skopeo(['copy', '--dest-tls-verify=false', `oci:${src}:v1`, ref]);
  t.equal(r.code, 0, `skopeo copy oci: -> docker:// (${r.ms} ms)`, { stderr: r.stderr.slice(-2000) });
  for (const digest of [...img.layerDigests, img.configDigest]) {
    const b = await http(reg.url, 'GET', `/v2/skopeo/s3/blobs/${digest}`);
    t.ok(b.buf.equals(readLayoutBlob(src, digest)), `blob ${digest.slice(7, 19)} stored byte for byte`);
  }
  r = await env.skopeo(['copy', '--src-tls-verify=false', ref, `oci:${back}:v1`]);
  t.equal(r.code, 0, `skopeo copy docker:// -> oci: (${r.ms} ms)`, { stderr: r.stderr.slice(-2000) });
  t.same(layoutBlobs(back), img.blobs, 'same blob set');
  for (const digest of img.blobs) {
    t.ok(readLayoutBlob(back, digest).equals(readLayoutBlob(src, digest)), `blob ${digest.slice(7, 19)} byte-identical`);
  }
  t.equal(layoutIndex(back)[0]?.digest, img.manifestDigest, 'same manifest digest');
});

t.test('storage.s3.redirect: blob GETs redirect to a presigned URL the client can follow', async (t) => {
  const { buildImage, pushImage } = await import('../helpers/v2');
  const s3 = await startS3rver(t);
  const reg = await startRegistry(t, { storage: { ...s3.overrides.storage, s3: { ...s3.overrides.storage!.s3, redirect: true, redirectExpiry: 60 } } });
  const img = buildImage({ layers: 1 });
  await pushImage(reg.url, 'redir/r', 'v1', img);
  const layer = img.layers[0]!;
  const res = await fetch(`${reg.url}/v2/redir/r/blobs/${layer.digest}`, { redirect: 'manual' });
  t.equal(res.status, 307);
  const location = res.headers.get('location')!;
  t.ok(location.startsWith(s3.endpoint), 'to the object store');
  t.match(location, /X-Amz-Expires=60/);
  const followed = await fetch(`${reg.url}/v2/redir/r/blobs/${layer.digest}`);
  t.ok(Buffer.from(await followed.arrayBuffer()).equals(layer.data), 'fetch follows it to the exact bytes');
  const head = await fetch(`${reg.url}/v2/redir/r/blobs/${layer.digest}`, { method: 'HEAD', redirect: 'manual' });
  t.same([head.status, head.headers.get('content-length')], [200, String(layer.data.length)], 'HEAD is answered here');

  // v1 layers too (302, as DR's storage_redirect did), and a v1 client that follows it gets the bytes.
  const { imageChain, pushV1 } = await import('../helpers/v1');
  const [v1img] = imageChain(1);
  await pushV1(reg.url, 'redir/v1', 'latest', [v1img!]);
  const v1 = await fetch(`${reg.url}/v1/images/${v1img!.id}/layer`, { redirect: 'manual' });
  t.equal(v1.status, 302);
  t.ok(v1.headers.get('location')!.startsWith(s3.endpoint));
  const v1Followed = await fetch(`${reg.url}/v1/images/${v1img!.id}/layer`);
  t.ok(Buffer.from(await v1Followed.arrayBuffer()).equals(v1img!.layer), 'v1 layer bytes through the redirect');
});
