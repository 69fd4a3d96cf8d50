import { randomBytes } from 'node:crypto';
import { readdirSync, truncateSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { http } from '../helpers/http';
import { startRegistry, type TestRegistry } from '../helpers/server';
import { blobOf, buildImage, pushBlob, pushImage, putManifest, sha256 } from '../helpers/v2';

// Every v2 endpoint and error code, written from the OCI Distribution Spec 1.1 workflows:
// pull, push, content discovery, content management.

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const errCode = (r: { json: any }) => r.json?.errors?.[0]?.code;

t.test('base', async (t) => {
  const reg = await startRegistry(t);
  for (const path of ['/v2/', '/v2']) {
    const r = await http(reg.url, 'GET', path);
    t.same([r.status, r.json], [200, {}], path);
    t.equal(r.headers.get('docker-distribution-api-version'), 'registry/2.0');
  }
  const r = await http(reg.url, 'GET', '/v2/no/such/thing');
  t.equal(r.status, 404);
  t.equal(r.headers.get('docker-distribution-api-version'), 'registry/2.0', 'even on errors');

  const off = await startRegistry(t, { protocols: { v2: false } });
  const o = await http(off.url, 'GET', '/v2/');
  t.equal(o.status, 404, 'protocols.v2: false turns the tree off');
  t.equal(o.headers.get('docker-distribution-api-version'), null, 'so Docker falls back to v1');
  t.equal((await http(off.url, 'GET', '/v1/_ping')).status, 200);
});

t.test('pull', async (t) => {
  const reg = await startRegistry(t);
  const img = buildImage({ layers: 2 });
  const digest = await pushImage(reg.url, 'a/b/c', 'v1', img);
  t.equal(digest, img.manifestDigest, 'multi-level name');

  for (const ref of ['v1', digest]) {
    const r = await http(reg.url, 'GET', `/v2/a/b/c/manifests/${ref}`, undefined, { accept: img.mediaType });
    t.equal(r.status, 200, `GET manifest ${ref}`);
    t.ok(r.buf.equals(img.manifest), 'byte for byte');
    t.equal(r.headers.get('content-type'), img.mediaType);
    t.equal(r.headers.get('docker-content-digest'), digest);
    t.equal(r.headers.get('content-length'), String(img.manifest.length));
    const h = await http(reg.url, 'HEAD', `/v2/a/b/c/manifests/${ref}`);
    t.same([h.status, h.buf.length], [200, 0]);
    t.equal(h.headers.get('docker-content-digest'), digest);
    t.equal(h.headers.get('content-length'), String(img.manifest.length), 'HEAD has the length');
  }

  const layer = img.layers[0]!;
  let r = await http(reg.url, 'GET', `/v2/a/b/c/blobs/${layer.digest}`);
  t.equal(r.status, 200);
  t.ok(r.buf.equals(layer.data));
  t.equal(r.headers.get('docker-content-digest'), layer.digest);
  t.equal(r.headers.get('accept-ranges'), 'bytes');
  r = await http(reg.url, 'HEAD', `/v2/a/b/c/blobs/${layer.digest}`);
  t.same([r.status, r.headers.get('content-length'), r.buf.length], [200, String(layer.data.length), 0]);
  r = await http(reg.url, 'GET', `/v2/a/b/c/blobs/${layer.digest}`, undefined, { range: 'bytes=3-10' });
  t.equal(r.status, 206);
  t.equal(r.headers.get('content-range'), `bytes 3-10/${layer.data.length}`);
  t.ok(r.buf.equals(layer.data.subarray(3, 11)));
  for (const range of [`bytes=${layer.data.length}-`, 'bytes=5-1', 'bytes=999999999999-']) {
    r = await http(reg.url, 'GET', `/v2/a/b/c/blobs/${layer.digest}`, undefined, { range });
    t.same([r.status, errCode(r), r.headers.get('content-range')], [416, 'RANGE_INVALID', `bytes */${layer.data.length}`], `${range}: 416 with an OCI body`);
  }

  // A reference that is neither a tag nor a digest names no manifest (conformance: 404, not 400).
  for (const method of ['GET', 'HEAD']) {
    for (const ref of ['.INVALID_MANIFEST_NAME', 'sha256:short', 'a:b']) {
      r = await http(reg.url, method, `/v2/a/b/c/manifests/${ref}`);
      t.same([r.status, method === 'GET' ? errCode(r) : 'MANIFEST_UNKNOWN'], [404, 'MANIFEST_UNKNOWN'], `${method} ${ref}`);
    }
  }
  r = await http(reg.url, 'PUT', '/v2/a/b/c/manifests/.INVALID_MANIFEST_NAME', img.manifest, { 'content-type': img.mediaType });
  t.equal(r.status, 400, 'a PUT with such a reference is still refused as invalid');

  r = await http(reg.url, 'GET', '/v2/a/b/c/manifests/nope');
  t.same([r.status, errCode(r)], [404, 'MANIFEST_UNKNOWN']);
  r = await http(reg.url, 'GET', `/v2/a/b/c/manifests/${sha256('x')}`);
  t.same([r.status, errCode(r)], [404, 'MANIFEST_UNKNOWN']);
  r = await http(reg.url, 'HEAD', `/v2/a/b/c/manifests/nope`);
  t.same([r.status, r.buf.length], [404, 0]);
  r = await http(reg.url, 'GET', `/v2/a/b/c/blobs/${sha256('missing')}`);
  t.same([r.status, errCode(r)], [404, 'BLOB_UNKNOWN']);
  r = await http(reg.url, 'GET', `/v2/other/repo/blobs/${layer.digest}`);
  t.same([r.status, errCode(r)], [404, 'BLOB_UNKNOWN'], 'a blob is served only by repositories that have it');
  r = await http(reg.url, 'GET', '/v2/a/b/c/blobs/sha256:abc');
  t.same([r.status, errCode(r)], [400, 'DIGEST_INVALID']);
  r = await http(reg.url, 'GET', '/v2/a/b/c/manifests/sha256:zz');
  t.same([r.status, errCode(r)], [404, 'MANIFEST_UNKNOWN'], 'a malformed manifest reference names no manifest');
  for (const bad of ['UPPER/case', 'a/-b', 'a/b_/c', '_x']) {
    r = await http(reg.url, 'GET', `/v2/${bad}/tags/list`);
    t.same([r.status, errCode(r)], [400, 'NAME_INVALID'], bad);
  }
  r = await http(reg.url, 'GET', `/v2/${'a'.repeat(256)}/tags/list`);
  t.same([r.status, errCode(r)], [400, 'NAME_INVALID'], 'name too long');
});

t.test('push: monolithic, POST with digest, chunked, mount', async (t) => {
  const reg = await startRegistry(t);
  const data = randomBytes(300_000);
  const digest = sha256(data);

  // POST then PUT with the whole body (ctr, docker-registry-client).
  let r = await http(reg.url, 'POST', '/v2/p/mono/blobs/uploads/');
  t.equal(r.status, 202);
  const loc = r.headers.get('location')!;
  t.match(loc, /^\/v2\/p\/mono\/blobs\/uploads\/[0-9a-f-]{36}$/, 'relative Location');
  t.equal(r.headers.get('docker-upload-uuid'), loc.split('/').pop());
  t.equal(r.headers.get('range'), '0-0');
  r = await http(reg.url, 'PUT', `${loc}?digest=${digest}`, data, { 'content-type': 'application/octet-stream' });
  t.equal(r.status, 201);
  t.equal(r.headers.get('location'), `/v2/p/mono/blobs/${digest}`);
  t.equal(r.headers.get('docker-content-digest'), digest);
  r = await http(reg.url, 'GET', loc);
  t.same([r.status, errCode(r)], [404, 'BLOB_UPLOAD_UNKNOWN'], 'the upload is gone once committed');
  // The same bytes again: already stored, so this upload's staged copy is deleted later, but the upload is
  // finished at once for the client.
  r = await http(reg.url, 'POST', '/v2/p/mono2/blobs/uploads/');
  const dup = r.headers.get('location')!;
  r = await http(reg.url, 'PUT', `${dup}?digest=${digest}`, data, { 'content-type': 'application/octet-stream' });
  t.equal(r.status, 201);
  r = await http(reg.url, 'GET', dup);
  t.same([r.status, errCode(r)], [404, 'BLOB_UPLOAD_UNKNOWN'], 'a duplicate upload is gone once committed');
  r = await http(reg.url, 'PATCH', dup, Buffer.from('x'), { 'content-type': 'application/octet-stream' });
  t.same([r.status, errCode(r)], [404, 'BLOB_UPLOAD_UNKNOWN'], 'and takes no more bytes');

  // Single POST with ?digest= and the body.
  const small = randomBytes(1000);
  r = await http(reg.url, 'POST', `/v2/p/single/blobs/uploads/?digest=${sha256(small)}`, small);
  t.same([r.status, r.headers.get('docker-content-digest')], [201, sha256(small)]);
  r = await http(reg.url, 'POST', `/v2/p/single/blobs/uploads/?digest=${sha256('other')}`, small);
  t.same([r.status, errCode(r)], [400, 'DIGEST_INVALID'], 'monolithic digest mismatch');

  // Chunked with Content-Range, out of order, status, final PUT with the last chunk.
  r = await http(reg.url, 'POST', '/v2/p/chunked/blobs/uploads/');
  const up = r.headers.get('location')!;
  const a = data.subarray(0, 100_000);
  const b = data.subarray(100_000, 200_000);
  const c = data.subarray(200_000);
  r = await http(reg.url, 'PATCH', up, a, { 'content-range': `0-${a.length - 1}`, 'content-type': 'application/octet-stream' });
  t.same([r.status, r.headers.get('range')], [202, '0-99999']);
  t.equal(r.headers.get('location'), up);
  r = await http(reg.url, 'PATCH', up, b, { 'content-range': `50000-${50000 + b.length - 1}` });
  t.same([r.status, errCode(r), r.headers.get('range')], [416, 'RANGE_INVALID', '0-99999'], 'overlapping chunk');
  r = await http(reg.url, 'PATCH', up, b, { 'content-range': `150000-${150000 + b.length - 1}` });
  t.same([r.status, r.headers.get('range')], [416, '0-99999'], 'chunk with a gap');
  r = await http(reg.url, 'PATCH', up, b, { 'content-range': '100000-100010', 'content-length': String(b.length) });
  t.equal(r.status, 416, 'Content-Range disagreeing with Content-Length');
  r = await http(reg.url, 'PATCH', up, b, { 'content-range': `100000-${100000 + b.length - 1}` });
  t.same([r.status, r.headers.get('range')], [202, '0-199999']);
  r = await http(reg.url, 'GET', up);
  t.same([r.status, r.headers.get('range'), r.headers.get('location')], [204, '0-199999', up], 'upload status');
  r = await http(reg.url, 'PUT', `${up}?digest=${sha256('wrong')}`, c, { 'content-range': `200000-${data.length - 1}` });
  t.same([r.status, errCode(r)], [400, 'DIGEST_INVALID']);
  r = await http(reg.url, 'GET', up);
  t.same([r.status, r.headers.get('range')], [204, `0-${data.length - 1}`], 'the last chunk was kept; finish with the right digest');
  r = await http(reg.url, 'PUT', `${up}?digest=${digest}`);
  t.equal(r.status, 201);
  r = await http(reg.url, 'GET', `/v2/p/chunked/blobs/${digest}`);
  t.ok(r.buf.equals(data), 'chunks assembled');

  // Streamed PATCH without Content-Range (docker, skopeo), then PUT without a body.
  r = await http(reg.url, 'POST', '/v2/p/stream/blobs/uploads/');
  const s = r.headers.get('location')!;
  r = await http(reg.url, 'PATCH', s, new Blob([data]).stream(), {}).catch(() => http(reg.url, 'PATCH', s, data));
  t.equal(r.status, 202);
  r = await http(reg.url, 'PUT', `${s}?digest=${digest}`);
  t.equal(r.status, 201);

  // Uploads are per repository.
  r = await http(reg.url, 'POST', '/v2/p/own/blobs/uploads/');
  const own = r.headers.get('location')!;
  r = await http(reg.url, 'GET', own.replace('/p/own/', '/p/other/'));
  t.same([r.status, errCode(r)], [404, 'BLOB_UPLOAD_UNKNOWN']);
  r = await http(reg.url, 'PUT', own);
  t.same([r.status, errCode(r)], [400, 'DIGEST_INVALID'], 'PUT without ?digest=');
  r = await http(reg.url, 'DELETE', own);
  t.equal(r.status, 204, 'cancel');
  r = await http(reg.url, 'GET', own);
  t.same([r.status, errCode(r)], [404, 'BLOB_UPLOAD_UNKNOWN']);
  r = await http(reg.url, 'PATCH', '/v2/p/own/blobs/uploads/not-an-upload', data);
  t.same([r.status, errCode(r)], [404, 'BLOB_UPLOAD_UNKNOWN']);

  // Cross-repository mount.
  r = await http(reg.url, 'POST', `/v2/p/target/blobs/uploads/?mount=${digest}&from=p/mono`);
  t.same([r.status, r.headers.get('location'), r.headers.get('docker-content-digest')], [201, `/v2/p/target/blobs/${digest}`, digest]);
  t.equal((await http(reg.url, 'HEAD', `/v2/p/target/blobs/${digest}`)).status, 200, 'mounted blob served');
  r = await http(reg.url, 'POST', `/v2/p/target2/blobs/uploads/?mount=${digest}&from=p/nothere`);
  t.equal(r.status, 202, 'mount from a repository without the blob falls back to an upload');
  t.ok(r.headers.get('location'));
  r = await http(reg.url, 'POST', `/v2/p/target3/blobs/uploads/?mount=${digest}`);
  t.equal(r.status, 202, 'mount without from: a normal upload');
  r = await http(reg.url, 'POST', '/v2/p/target/blobs/uploads/?mount=sha256:bad&from=p/mono');
  t.same([r.status, errCode(r)], [400, 'DIGEST_INVALID']);
});

t.test('uploads survive a restart', async (t) => {
  let reg = await startRegistry(t);
  const data = randomBytes(200_000);
  let r = await http(reg.url, 'POST', '/v2/r/s/blobs/uploads/');
  const up = r.headers.get('location')!;
  r = await http(reg.url, 'PATCH', up, data.subarray(0, 123_456), { 'content-range': '0-123455' });
  t.equal(r.status, 202);
  reg = await reg.restart();
  r = await http(reg.url, 'GET', up);
  t.same([r.status, r.headers.get('range')], [204, '0-123455'], 'state is in the index');
  r = await http(reg.url, 'PATCH', up, data.subarray(123_456), { 'content-range': `123456-${data.length - 1}` });
  t.equal(r.status, 202);
  r = await http(reg.url, 'PUT', `${up}?digest=${sha256(data)}`);
  t.equal(r.status, 201, 'digest verified after re-hashing the staged bytes');
  r = await http(reg.url, 'GET', `/v2/r/s/blobs/${sha256(data)}`);
  t.ok(r.buf.equals(data));
});

t.test('staged bytes cut short across a restart (fsync off, a crash): PATCH and PUT answer 404 BLOB_UPLOAD_UNKNOWN, not 500', async (t) => {
  // The local driver's staged files (S3 keeps its parts elsewhere).
  let reg = await startRegistry(t, { storage: { driver: 'local' } });
  const data = randomBytes(200_000);
  const uploads: string[] = [];
  for (let i = 0; i < 2; i++) {
    const r = await http(reg.url, 'POST', '/v2/r/short/blobs/uploads/');
    uploads.push(r.headers.get('location')!);
    t.equal((await http(reg.url, 'PATCH', uploads[i]!, data.subarray(0, 150_000), { 'content-range': '0-149999' })).status, 202);
  }
  reg = await reg.restart();
  const staging = path.join(reg.config.storage.local.root, 'uploads');
  for (const f of readdirSync(staging)) truncateSync(path.join(staging, f), 100_000);
  let r = await http(reg.url, 'PATCH', uploads[0]!, data.subarray(150_000), { 'content-range': '150000-199999' });
  t.same([r.status, errCode(r)], [404, 'BLOB_UPLOAD_UNKNOWN'], 'a resumed PATCH: the client starts over');
  r = await http(reg.url, 'PUT', `${uploads[1]}?digest=${sha256(data.subarray(0, 150_000))}`);
  t.same([r.status, errCode(r)], [404, 'BLOB_UPLOAD_UNKNOWN'], 'the PUT that would end it');
  t.same(readdirSync(staging), [], 'both uploads gone, staged bytes too');
  r = await http(reg.url, 'HEAD', `/v2/r/short/blobs/${sha256(data.subarray(0, 150_000))}`);
  t.equal(r.status, 404, 'nothing stored');
});

t.test('manifests: validation, media types, by digest, size', async (t) => {
  const reg = await startRegistry(t);
  const img = buildImage({ format: 'docker' });
  for (const b of [img.config, ...img.layers]) await pushBlob(reg.url, 'm/x', b);

  let r = await putManifest(reg.url, 'm/x', img.manifestDigest, img.manifest, img.mediaType);
  t.equal(r.status, 201, 'PUT by digest');
  t.equal(r.headers.get('location'), `/v2/m/x/manifests/${img.manifestDigest}`);
  r = await putManifest(reg.url, 'm/x', sha256('other'), img.manifest, img.mediaType);
  t.equal(r.status, 400, 'PUT by a digest that is not the body');
  t.equal(errCode({ json: await r.json() }), 'DIGEST_INVALID');

  const missing = buildImage();
  r = await putManifest(reg.url, 'm/x', 'missing', missing.manifest, missing.mediaType);
  t.same([r.status, errCode({ json: await r.json() })], [400, 'MANIFEST_BLOB_UNKNOWN'], 'blobs must be in the repository');
  r = await putManifest(reg.url, 'm/other', 'v1', img.manifest, img.mediaType);
  t.same([r.status, errCode({ json: await r.json() })], [400, 'MANIFEST_BLOB_UNKNOWN'], 'even if another repository has them');

  const cases: [string, string, string][] = [
    ['{not json', img.mediaType, 'invalid JSON'],
    ['[]', img.mediaType, 'not an object'],
    [JSON.stringify({ schemaVersion: 1, name: 'x', tag: 'y', fsLayers: [] }), 'application/vnd.docker.distribution.manifest.v1+json', 'schema 1'],
    [JSON.stringify({ schemaVersion: 2, mediaType: 'text/plain' }), 'text/plain', 'unknown media type'],
    [img.manifest.toString(), 'application/vnd.oci.image.manifest.v1+json', 'Content-Type differs from mediaType'],
    [JSON.stringify({ schemaVersion: 2, mediaType: img.mediaType, config: { digest: 'sha256:1', size: 1, mediaType: 'x' }, layers: [] }), img.mediaType, 'bad descriptor'],
    [JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: {} }), OCI_INDEX, 'manifests not an array'],
  ];
  for (const [body, type, what] of cases) {
    r = await putManifest(reg.url, 'm/x', 'bad', Buffer.from(body), type);
    t.same([r.status, errCode({ json: await r.json() })], [400, 'MANIFEST_INVALID'], what);
  }
  r = await putManifest(reg.url, 'm/x', 'huge', Buffer.alloc(4 * 1024 * 1024 + 1, 0x20), img.mediaType);
  t.equal(r.status, 413, 'manifests over 4 MiB');
  r = await putManifest(reg.url, 'm/x', '-bad-tag', img.manifest, img.mediaType);
  t.equal(r.status, 400, 'invalid tag');

  // OCI manifest without mediaType, identified by Content-Type; an artifact with a custom config type.
  const art = buildImage({ artifactType: 'application/vnd.example.sbom' });
  const bare = JSON.parse(art.manifest.toString());
  delete bare.mediaType;
  bare.config.mediaType = 'application/vnd.example.config+json';
  const bareBody = Buffer.from(JSON.stringify(bare));
  for (const b of [art.config, ...art.layers]) await pushBlob(reg.url, 'm/x', b);
  r = await putManifest(reg.url, 'm/x', 'artifact', bareBody, 'application/vnd.oci.image.manifest.v1+json');
  t.equal(r.status, 201);
  const got = await http(reg.url, 'GET', '/v2/m/x/manifests/artifact');
  t.equal(got.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json');
  t.ok(got.buf.equals(bareBody));

  // An OCI manifest with no layers (artifacts) and the empty config.
  const empty = blobOf(Buffer.from('{}'), 'application/vnd.oci.empty.v1+json');
  await pushBlob(reg.url, 'm/x', empty);
  const noLayers = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.example', config: { mediaType: empty.mediaType, digest: empty.digest, size: 2 }, layers: [] }),
  );
  r = await putManifest(reg.url, 'm/x', 'nolayers', noLayers, 'application/vnd.oci.image.manifest.v1+json');
  t.equal(r.status, 201, 'no layers is fine');

  // A manifest is also a blob of its repository.
  const asBlob = await http(reg.url, 'GET', `/v2/m/x/blobs/${img.manifestDigest}`);
  t.ok(asBlob.buf.equals(img.manifest));
});

t.test('indexes: children must exist', async (t) => {
  const reg = await startRegistry(t);
  const amd = buildImage({ arch: 'amd64' });
  const arm = buildImage({ arch: 'arm64' });
  await pushImage(reg.url, 'multi/arch', amd.manifestDigest, amd);
  const index = (types: string) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: types,
        manifests: [amd, arm].map((m, i) => ({
          mediaType: m.mediaType,
          digest: m.manifestDigest,
          size: m.manifest.length,
          platform: { architecture: i ? 'arm64' : 'amd64', os: 'linux' },
        })),
      }),
    );
  let r = await putManifest(reg.url, 'multi/arch', 'v1', index(OCI_INDEX), OCI_INDEX);
  t.same([r.status, errCode({ json: await r.json() })], [400, 'MANIFEST_BLOB_UNKNOWN'], 'arm64 child missing');
  await pushImage(reg.url, 'multi/arch', arm.manifestDigest, arm);
  r = await putManifest(reg.url, 'multi/arch', 'v1', index(OCI_INDEX), OCI_INDEX);
  t.equal(r.status, 201);
  const list = 'application/vnd.docker.distribution.manifest.list.v2+json';
  r = await putManifest(reg.url, 'multi/arch', 'list', index(list), list);
  t.equal(r.status, 201, 'Docker manifest list');
  const got = await http(reg.url, 'GET', '/v2/multi/arch/manifests/list');
  t.equal(got.headers.get('content-type'), list);
});

t.test('discovery: tags and catalog with pagination', async (t) => {
  const reg = await startRegistry(t);
  const img = buildImage();
  const tags = ['v10', 'v2', 'V1', 'latest', '1.0', 'a_b', 'z-9'];
  for (const tag of tags) await pushImage(reg.url, 'disc/repo', tag, img);
  const sorted = [...tags].sort();
  let r = await http(reg.url, 'GET', '/v2/disc/repo/tags/list');
  t.same(r.json, { name: 'disc/repo', tags: sorted }, 'lexically sorted');
  t.equal(r.headers.get('link'), null);
  r = await http(reg.url, 'GET', '/v2/disc/repo/tags/list?n=3');
  t.same(r.json.tags, sorted.slice(0, 3));
  t.equal(r.headers.get('link'), `</v2/disc/repo/tags/list?n=3&last=${sorted[2]}>; rel="next"`);
  r = await http(reg.url, 'GET', `/v2/disc/repo/tags/list?n=3&last=${sorted[2]}`);
  t.same(r.json.tags, sorted.slice(3, 6));
  r = await http(reg.url, 'GET', `/v2/disc/repo/tags/list?last=${sorted[5]}`);
  t.same(r.json.tags, sorted.slice(6));
  r = await http(reg.url, 'GET', '/v2/disc/repo/tags/list?n=0');
  t.same(r.json.tags, []);
  r = await http(reg.url, 'GET', '/v2/disc/repo/tags/list?n=-1');
  t.same([r.status, errCode(r)], [400, 'PAGINATION_NUMBER_INVALID']);
  r = await http(reg.url, 'GET', '/v2/disc/none/tags/list');
  t.same([r.status, errCode(r)], [404, 'NAME_UNKNOWN']);

  for (const name of ['cat/b', 'cat/a', 'cat/c/d']) await pushImage(reg.url, name, 'x', img);
  r = await http(reg.url, 'GET', '/v2/_catalog');
  t.same(r.json, { repositories: ['cat/a', 'cat/b', 'cat/c/d', 'disc/repo'] });
  r = await http(reg.url, 'GET', '/v2/_catalog?n=2');
  t.same(r.json.repositories, ['cat/a', 'cat/b']);
  t.equal(r.headers.get('link'), '</v2/_catalog?n=2&last=cat%2Fb>; rel="next"');
  r = await http(reg.url, 'GET', '/v2/_catalog?n=2&last=cat%2Fb');
  t.same(r.json.repositories, ['cat/c/d', 'disc/repo']);
});

t.test('referrers (OCI 1.1)', async (t) => {
  const reg = await startRegistry(t);
  const img = buildImage();
  const subjectDigest = await pushImage(reg.url, 'ref/r', 'v1', img);
  const subject = { mediaType: img.mediaType, digest: subjectDigest, size: img.manifest.length };
  const sbom = buildImage({ layers: 1, subject, artifactType: 'application/vnd.example.sbom', annotations: { 'org.example.k': 'v' } });
  const sig = buildImage({ layers: 1, subject, artifactType: 'application/vnd.example.sig' });
  for (const b of [sbom.config, ...sbom.layers, sig.config, ...sig.layers]) await pushBlob(reg.url, 'ref/r', b);
  let res = await putManifest(reg.url, 'ref/r', sbom.manifestDigest, sbom.manifest, sbom.mediaType);
  t.equal(res.status, 201);
  t.equal(res.headers.get('oci-subject'), subjectDigest, 'OCI-Subject answers a PUT with subject');
  res = await putManifest(reg.url, 'ref/r', sig.manifestDigest, sig.manifest, sig.mediaType);
  t.equal(res.headers.get('oci-subject'), subjectDigest);

  let r = await http(reg.url, 'GET', `/v2/ref/r/referrers/${subjectDigest}`);
  t.equal(r.status, 200);
  t.equal(r.headers.get('content-type'), OCI_INDEX);
  t.equal(r.json.schemaVersion, 2);
  t.equal(r.json.mediaType, OCI_INDEX);
  t.same(
    r.json.manifests.sort((a: { digest: string }, b: { digest: string }) => a.digest.localeCompare(b.digest)),
    [
      { mediaType: sbom.mediaType, digest: sbom.manifestDigest, size: sbom.manifest.length, artifactType: 'application/vnd.example.sbom', annotations: { 'org.example.k': 'v' } },
      { mediaType: sig.mediaType, digest: sig.manifestDigest, size: sig.manifest.length, artifactType: 'application/vnd.example.sig' },
    ].sort((a, b) => a.digest.localeCompare(b.digest)),
  );
  t.equal(r.headers.get('oci-filters-applied'), null);
  r = await http(reg.url, 'GET', `/v2/ref/r/referrers/${subjectDigest}?artifactType=application/vnd.example.sig`);
  t.same(r.json.manifests.map((m: { digest: string }) => m.digest), [sig.manifestDigest]);
  t.equal(r.headers.get('oci-filters-applied'), 'artifactType');
  r = await http(reg.url, 'GET', `/v2/ref/r/referrers/${sha256('unknown')}`);
  t.same([r.status, r.json], [200, { schemaVersion: 2, mediaType: OCI_INDEX, manifests: [] }], 'unknown subject: empty index');
  r = await http(reg.url, 'GET', '/v2/ref/r/referrers/sha256:nope');
  t.same([r.status, errCode(r)], [400, 'DIGEST_INVALID']);

  // A referrer may arrive before its subject.
  const early = buildImage({ layers: 1, subject: { ...subject, digest: sha256('later') }, artifactType: 'x/y' });
  for (const b of [early.config, ...early.layers]) await pushBlob(reg.url, 'ref/r', b);
  res = await putManifest(reg.url, 'ref/r', early.manifestDigest, early.manifest, early.mediaType);
  t.equal(res.status, 201);
  r = await http(reg.url, 'GET', `/v2/ref/r/referrers/${sha256('later')}`);
  t.equal(r.json.manifests.length, 1);

  // Deleting a referrer removes it from the list.
  await http(reg.url, 'DELETE', `/v2/ref/r/manifests/${sig.manifestDigest}`);
  r = await http(reg.url, 'GET', `/v2/ref/r/referrers/${subjectDigest}`);
  t.same(r.json.manifests.map((m: { digest: string }) => m.digest), [sbom.manifestDigest]);
});

t.test('management: deletes', async (t) => {
  const reg: TestRegistry = await startRegistry(t);
  const img = buildImage();
  const digest = await pushImage(reg.url, 'del/r', 'one', img);
  await putManifest(reg.url, 'del/r', 'two', img.manifest, img.mediaType);

  let r = await http(reg.url, 'DELETE', '/v2/del/r/manifests/one');
  t.equal(r.status, 202, 'delete by tag');
  t.same((await http(reg.url, 'GET', '/v2/del/r/tags/list')).json.tags, ['two'], 'only that tag went');
  t.equal((await http(reg.url, 'GET', `/v2/del/r/manifests/${digest}`)).status, 200, 'manifest stays');
  r = await http(reg.url, 'DELETE', '/v2/del/r/manifests/one');
  t.same([r.status, errCode(r)], [404, 'MANIFEST_UNKNOWN']);

  r = await http(reg.url, 'DELETE', `/v2/del/r/manifests/${digest}`);
  t.equal(r.status, 202, 'delete by digest');
  t.equal((await http(reg.url, 'GET', `/v2/del/r/manifests/${digest}`)).status, 404);
  t.equal((await http(reg.url, 'GET', '/v2/del/r/manifests/two')).status, 404, 'tags pointing at it went');
  t.same((await http(reg.url, 'GET', '/v2/del/r/tags/list')).json.tags, []);
  r = await http(reg.url, 'DELETE', `/v2/del/r/manifests/${digest}`);
  t.same([r.status, errCode(r)], [404, 'MANIFEST_UNKNOWN']);

  const layer = img.layers[0]!.digest;
  r = await http(reg.url, 'DELETE', `/v2/del/r/blobs/${layer}`);
  t.equal(r.status, 202);
  t.equal((await http(reg.url, 'GET', `/v2/del/r/blobs/${layer}`)).status, 404);
  r = await http(reg.url, 'DELETE', `/v2/del/r/blobs/${layer}`);
  t.same([r.status, errCode(r)], [404, 'BLOB_UNKNOWN']);

  r = await http(reg.url, 'PATCH', '/v2/del/r/manifests/x');
  t.same([r.status, errCode(r)], [405, 'UNSUPPORTED']);
  t.match(r.headers.get('allow'), /DELETE/);
});

t.test('v1 and v2 share one blob store', async (t) => {
  const reg = await startRegistry(t, { storage: { driver: 'local' } });
  const { imageChain, pushV1 } = await import('../helpers/v1');
  const [img] = imageChain(1);
  await pushV1(reg.url, 'shared/one', 'latest', [img!]);
  const layerDigest = sha256(img!.layer);
  const r = await http(reg.url, 'POST', `/v2/shared/two/blobs/uploads/?digest=${layerDigest}`, img!.layer);
  t.equal(r.status, 201);
  const rec = await reg.app.registry.blobs.stat(layerDigest as `sha256:${string}`);
  t.ok(rec, 'one record for the bytes both protocols pushed');
  const { readdirSync, readFileSync } = await import('node:fs');
  const { join } = await import('node:path');
  // Every stored object holding the layer's bytes (other blobs may share its two-character shard).
  const root = join(reg.dir, 'blobs/blobs/sha256');
  const copies = readdirSync(root).flatMap((shard) =>
    readdirSync(join(root, shard)).filter((f) => readFileSync(join(root, shard, f)).equals(img!.layer)),
  );
  t.same(copies, [layerDigest.slice(7)], 'stored once');
});

t.test('Location behind a trusted TLS proxy', async (t) => {
  const plain = await startRegistry(t);
  const fwd = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'registry.example.com' };
  let r = await http(plain.url, 'POST', '/v2/px/r/blobs/uploads/', undefined, fwd);
  t.match(r.headers.get('location'), /^\/v2\/px\/r\/blobs\/uploads\//, 'untrusted: relative, forwarded headers ignored');

  const proxied = await startRegistry(t, { http: { trustProxy: 1 } });
  r = await http(proxied.url, 'POST', '/v2/px/r/blobs/uploads/', undefined, fwd);
  t.match(r.headers.get('location'), /^https:\/\/registry\.example\.com\/v2\/px\/r\/blobs\/uploads\/[0-9a-f-]+$/);
  const data = Buffer.from('through the proxy');
  r = await http(proxied.url, 'PUT', `${new URL(r.headers.get('location')!).pathname}?digest=${sha256(data)}`, data, fwd);
  t.equal(r.headers.get('location'), `https://registry.example.com/v2/px/r/blobs/${sha256(data)}`);
});

t.test('malformed URLs answer in the error format of their protocol', async (t) => {
  const reg = await startRegistry(t);
  let r = await http(reg.url, 'GET', '/v2/%ff/tags/list');
  t.same([r.status, errCode(r)], [400, 'BAD_REQUEST']);
  r = await http(reg.url, 'GET', '/v1/images/%ff/json');
  t.equal(r.status, 400);
  t.match(r.json, { error: /malformed URL/ });
});

t.test('a blob whose bytes vanished from storage is a 404, not a 500', async (t) => {
  const reg = await startRegistry(t, { storage: { driver: 'local' } });
  const img = buildImage({ layers: 1 });
  await pushImage(reg.url, 'lost/r', 'v1', img);
  const { rmSync } = await import('node:fs');
  const hex = img.layers[0]!.digest.slice(7);
  rmSync(`${reg.dir}/blobs/blobs/sha256/${hex.slice(0, 2)}/${hex}`);
  const r = await http(reg.url, 'GET', `/v2/lost/r/blobs/${img.layers[0]!.digest}`);
  t.same([r.status, errCode(r)], [404, 'BLOB_UNKNOWN']);
});

t.test('blob downloads: ranges across the read buffers, concurrent readers, a client leaving mid-way', async (t) => {
  const reg = await startRegistry(t, { storage: { driver: 'local' } });
  const data = randomBytes(5 * 1024 * 1024 + 333); // spans several 1 MiB read buffers
  const blob = blobOf(data);
  await pushBlob(reg.url, 'dl/r', blob);
  const path = `/v2/dl/r/blobs/${blob.digest}`;
  const { request } = await import('node:http');
  const get = (range?: string) =>
    new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = request(new URL(path, reg.url), { headers: range ? { range } : {} }, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(parts) }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end();
    });

  // A client that goes away after the first bytes.
  await new Promise<void>((resolve, reject) => {
    const req = request(new URL(path, reg.url), (res) => {
      res.once('data', () => {
        req.destroy();
        resolve();
      });
    });
    req.on('error', (err) => ((err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(err)));
    req.end();
  });

  // Many readers at once share the buffer pool without seeing each other's bytes.
  const ranges: [number, number][] = [
    [0, data.length - 1],
    [1, 1024 * 1024 + 1],
    [1024 * 1024 - 1, 3 * 1024 * 1024],
    [data.length - 10, data.length - 1],
  ];
  const results = await Promise.all([...ranges, ...ranges].map(([a, b]) => get(a === 0 && b === data.length - 1 ? undefined : `bytes=${a}-${b}`)));
  [...ranges, ...ranges].forEach(([a, b], i) => {
    const whole = a === 0 && b === data.length - 1;
    t.equal(results[i]!.status, whole ? 200 : 206, `status for ${a}-${b}`);
    t.ok(results[i]!.body.equals(data.subarray(a, b + 1)), `bytes ${a}-${b}`);
  });
});

t.test('a full disk or a file size limit is 507 STORAGE_FULL, not a bare 500, and the upload can be retried', async (t) => {
  const reg = await startRegistry(t, { storage: { driver: 'local' } });
  const { LocalDriver } = await import('../../src/storage/local-driver');
  const real = LocalDriver.prototype.appendUpload;
  let failure = { code: 'ENOSPC', errno: -28, message: 'no space left on device' };
  LocalDriver.prototype.appendUpload = async () => {
    throw Object.assign(new Error(`${failure.code}: ${failure.message}, write`), failure);
  };
  t.teardown(() => {
    LocalDriver.prototype.appendUpload = real;
  });
  const blob = blobOf(randomBytes(1000));
  const put = async (repo: string) => {
    const post = await http(reg.url, 'POST', `/v2/${repo}/blobs/uploads/`);
    const location = `${post.headers.get('location')}?digest=${blob.digest}`;
    return { location, res: await http(reg.url, 'PUT', location, blob.data, { 'content-type': 'application/octet-stream' }) };
  };
  const full = await put('full/r');
  t.same([full.res.status, errCode(full.res), full.res.json?.errors?.[0]?.message], [507, 'STORAGE_FULL', 'the registry is out of storage space']);

  // The same rule answers v1 clients, in v1's error body.
  const { imageChain } = await import('../helpers/v1');
  const [img] = imageChain(1);
  const v1Token = { authorization: 'Token signature=unsigned,repository="full/v1",access=write' };
  const v1 = await http(reg.url, 'PUT', `/v1/images/${img!.id}/json`, img!.json, v1Token); // stored as a blob too
  t.same([v1.status, v1.json], [507, { error: 'the registry is out of storage space' }]);

  // Past the file system's largest file, or the process's file size limit: the same code, its own message.
  failure = { code: 'EFBIG', errno: -27, message: 'file too large' };
  const big = await put('big/r');
  t.same([big.res.status, errCode(big.res), big.res.json?.errors?.[0]?.message], [507, 'STORAGE_FULL', 'the blob is larger than the storage can hold in one file']);

  LocalDriver.prototype.appendUpload = real; // space freed: the same upload goes through
  const again = await http(reg.url, 'PUT', full.location, blob.data, { 'content-type': 'application/octet-stream' });
  t.equal(again.status, 201);
});
