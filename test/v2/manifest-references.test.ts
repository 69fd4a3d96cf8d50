import { randomBytes } from 'node:crypto';
import t from 'tap';
import { countWork } from '../helpers/count-work';
import { http } from '../helpers/http';
import { startRegistry } from '../helpers/server';
import { blobOf, pushBlob, sha256 } from '../helpers/v2';

// A manifest PUT checks its references in one set-based query per kind (issue 22, item 6 c): a
// 4 MiB manifest naming one blob 36,000 times, or thousands of missing ones, costs a few statements.

const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const errOf = (r: { json: any }) => r.json?.errors?.[0];
const fakeDigest = () => sha256(randomBytes(16));

/** An image manifest whose layers are `layers` (short descriptors, so 36,000 fit in 4 MiB). */
function manifestOf(config: { digest: string; size: number }, layers: string[]): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: layers.map((digest) => ({ mediaType: 'a', digest, size: 1 })),
    }),
  );
}

/** A config and a layer pushed to `repo`, for manifests to name. */
async function configAndLayer(url: string, repo: string) {
  const config = blobOf(Buffer.from('{}'));
  const layer = blobOf(randomBytes(100));
  await pushBlob(url, repo, config);
  await pushBlob(url, repo, layer);
  return { config, layer };
}

t.test('one blob named 36,000 times: 201 with a bounded number of statements', async (t) => {
  const reg = await startRegistry(t);
  const { config, layer } = await configAndLayer(reg.url, 'many/refs');
  const body = manifestOf({ digest: config.digest, size: config.data.length }, Array(36_000).fill(layer.digest));
  t.ok(body.length <= 4 * 1024 * 1024 && body.length > 3_900_000, `${body.length} bytes`);
  let r!: Awaited<ReturnType<typeof http>>;
  const work = await countWork(async () => {
    r = await http(reg.url, 'PUT', '/v2/many/refs/manifests/v1', body, { 'content-type': OCI_MANIFEST });
  });
  t.equal(r.status, 201, JSON.stringify(r.json));
  t.equal(r.headers.get('docker-content-digest'), sha256(body));
  t.ok(work.statements <= 30, `${work.statements} statements`);
  r = await http(reg.url, 'GET', '/v2/many/refs/manifests/v1', undefined, { accept: OCI_MANIFEST });
  t.equal(r.status, 200);
  t.same(r.buf, body, 'stored byte for byte');
});

t.test('5,000 distinct missing blobs: 400 MANIFEST_BLOB_UNKNOWN naming the first, few statements', async (t) => {
  const reg = await startRegistry(t);
  const { config, layer } = await configAndLayer(reg.url, 'miss/refs');
  // Present in another repository only: still missing here.
  const elsewhere = blobOf(randomBytes(100));
  await pushBlob(reg.url, 'other/repo', elsewhere);
  const missing = Array.from({ length: 5000 }, fakeDigest);
  const layers = [layer.digest, elsewhere.digest, ...missing, layer.digest];
  const body = manifestOf({ digest: config.digest, size: config.data.length }, layers);
  let r!: Awaited<ReturnType<typeof http>>;
  const work = await countWork(async () => {
    r = await http(reg.url, 'PUT', '/v2/miss/refs/manifests/v1', body, { 'content-type': OCI_MANIFEST });
  });
  t.equal(r.status, 400);
  t.equal(errOf(r)?.code, 'MANIFEST_BLOB_UNKNOWN');
  t.same(errOf(r)?.detail, { digest: elsewhere.digest }, 'the first missing reference, in manifest order, as before');
  t.match(errOf(r)?.message, `blob ${elsewhere.digest} is not in miss/refs`);
  t.ok(work.statements <= 30, `${work.statements} statements`);

  // Missing config first: named first.
  const noConfig = manifestOf({ digest: missing[0]!, size: 2 }, [layer.digest]);
  r = await http(reg.url, 'PUT', '/v2/miss/refs/manifests/v2', noConfig, { 'content-type': OCI_MANIFEST });
  t.same([r.status, errOf(r)?.code, errOf(r)?.detail], [400, 'MANIFEST_BLOB_UNKNOWN', { digest: missing[0] }]);
  r = await http(reg.url, 'GET', '/v2/miss/refs/manifests/v1');
  t.equal(r.status, 404, 'nothing stored');
});

t.test('an index naming thousands of child manifests, present and missing', async (t) => {
  const reg = await startRegistry(t);
  const config = blobOf(Buffer.from('{}'));
  await pushBlob(reg.url, 'idx/refs', config);
  const child = manifestOf({ digest: config.digest, size: config.data.length }, []);
  let r = await http(reg.url, 'PUT', '/v2/idx/refs/manifests/child', child, { 'content-type': OCI_MANIFEST });
  t.equal(r.status, 201);
  const childDesc = { mediaType: OCI_MANIFEST, digest: sha256(child), size: child.length };
  const index = (digests: string[]) =>
    Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: digests.map((digest) => ({ ...childDesc, digest })) }));

  const ok = index(Array(20_000).fill(childDesc.digest));
  let work = await countWork(async () => {
    r = await http(reg.url, 'PUT', '/v2/idx/refs/manifests/all', ok, { 'content-type': OCI_INDEX });
  });
  t.equal(r.status, 201, 'the same child 20,000 times');
  t.ok(work.statements <= 30, `${work.statements} statements`);

  const missing = Array.from({ length: 3000 }, fakeDigest);
  const bad = index([childDesc.digest, ...missing]);
  work = await countWork(async () => {
    r = await http(reg.url, 'PUT', '/v2/idx/refs/manifests/bad', bad, { 'content-type': OCI_INDEX });
  });
  t.same([r.status, errOf(r)?.code, errOf(r)?.detail], [400, 'MANIFEST_BLOB_UNKNOWN', { digest: missing[0] }]);
  t.match(errOf(r)?.message, `manifest ${missing[0]} is not in idx/refs`);
  t.ok(work.statements <= 30, `${work.statements} statements`);
});
