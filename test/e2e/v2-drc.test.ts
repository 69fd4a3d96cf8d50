import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { recordRequests } from '../helpers/request-log';
import { startRegistry } from '../helpers/server';
import { tarOf } from '../helpers/v1';
import { blobOf, buildImage, pushImage, putManifest, sha256 } from '../helpers/v2';

// Acceptance: the npm docker-registry-client package's v2 client (lib/registry-client-v2.js, 3.4.0) against
// the v2 API over plain HTTP: ping, listTags, getManifest of OCI, Docker schema2 and index manifests (bytes
// and digest as seeded), headBlob, createBlobReadStream (bytes equal; the client itself checks
// Docker-Content-Digest and Content-Length), blobUpload of new blobs (POST uploads/, then one PUT ?digest=
// with the body), putManifest of a Docker schema2 manifest referencing them, and getManifest of that.

// The package ships no types: the part of its v2 API used here. Callbacks are (err, ...results).
type Res = IncomingMessage & { body?: string };
type Cb<A extends unknown[]> = (err: (Error & { statusCode?: number; body?: unknown }) | null, ...results: A) => void;
interface Manifest {
  schemaVersion: number;
  mediaType?: string;
  config?: { digest: string; size: number };
  layers?: { digest: string; size: number }[];
  manifests?: { digest: string }[];
}
interface RegistryClientV2 {
  version: number;
  ping(cb: Cb<[unknown, Res]>): void;
  supportsV2(cb: Cb<[boolean]>): void;
  listTags(cb: Cb<[{ name: string; tags: string[] }, Res]>): void;
  getManifest(opts: { ref: string; acceptManifestLists?: boolean }, cb: Cb<[Manifest, Res, string]>): void;
  headBlob(opts: { digest: string }, cb: Cb<[Res[]]>): void;
  createBlobReadStream(opts: { digest: string }, cb: Cb<[Res, Res[]]>): void;
  blobUpload(opts: { digest: string; contentLength: number; stream: Readable; contentType?: string }, cb: Cb<[Res]>): void;
  putManifest(opts: { ref: string; manifest: string }, cb: Cb<[Res, string, string]>): void;
  close(): void;
}
interface Drc {
  createClientV2(opts: {
    name: string;
    scheme?: string;
    insecure?: boolean;
    maxSchemaVersion?: number;
    acceptManifestLists?: boolean;
    log?: unknown;
  }): RegistryClientV2;
}

const drc = require('docker-registry-client') as Drc;
// bunyan as the client itself loads it; 'fatal' keeps its JSON log lines out of the TAP stream.
const bunyan = createRequire(require.resolve('docker-registry-client'))('bunyan') as {
  createLogger(opts: { name: string; level: string }): unknown;
};

/** Call a callback-style client method; resolves with its results, rejects with its error. */
function call<A extends unknown[]>(fn: (cb: Cb<A>) => void): Promise<A> {
  return new Promise((resolve, reject) => fn((err, ...results) => (err ? reject(err) : resolve(results))));
}

/** The error a call fails with (undefined if it succeeds). */
async function failure(p: Promise<unknown>): Promise<(Error & { statusCode?: number; body?: unknown }) | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e as Error & { statusCode?: number };
  }
}

function readAll(stream: Res): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => resolve(Buffer.concat(chunks)));
    stream.resume(); // the client hands the stream over paused
  });
}

t.test('docker-registry-client v2 pulls and pushes', async (t) => {
  const reg = await startRegistry(t);
  const oci = buildImage({ layers: 2, layerBytes: 100_000 });
  const docker = buildImage({ layers: 1, format: 'docker' });
  const arm = buildImage({ layers: 1, arch: 'arm64' });
  await pushImage(reg.url, 'drc/app', 'v1', oci);
  await pushImage(reg.url, 'drc/app', 'v2', docker);
  await pushImage(reg.url, 'drc/app', arm.manifestDigest, arm);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: oci.mediaType, digest: oci.manifestDigest, size: oci.manifest.length, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: arm.mediaType, digest: arm.manifestDigest, size: arm.manifest.length, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    }),
  );
  t.equal((await putManifest(reg.url, 'drc/app', 'multi', index, 'application/vnd.oci.image.index.v1+json')).status, 201, 'index seeded');
  const log = recordRequests(reg.app.server);

  const client = drc.createClientV2({
    name: `${reg.host}/drc/app`,
    scheme: 'http',
    insecure: true,
    maxSchemaVersion: 2,
    acceptManifestLists: true,
    log: bunyan.createLogger({ name: 'drc-v2-test', level: 'fatal' }),
  });
  t.teardown(() => client.close());
  t.equal(client.version, 2, 'a v2 client');

  const [pingBody, pingRes] = await call<[unknown, Res]>((cb) => client.ping(cb));
  t.equal(pingRes.statusCode, 200, 'ping: GET /v2/ 200');
  t.same(pingBody, {}, 'ping body {}');
  t.equal(pingRes.headers['docker-distribution-api-version'], 'registry/2.0', 'ping: Docker-Distribution-API-Version');
  t.equal((await call<[boolean]>((cb) => client.supportsV2(cb)))[0], true, 'supportsV2');

  const [tags] = await call<[{ name: string; tags: string[] }, Res]>((cb) => client.listTags(cb));
  t.same(tags, { name: 'drc/app', tags: ['multi', 'v1', 'v2'] }, 'listTags: the seeded tags, sorted');

  for (const [ref, img, what] of [
    ['v1', oci, 'OCI manifest'],
    ['v2', docker, 'Docker schema2 manifest'],
    [oci.manifestDigest, oci, 'OCI manifest by digest'],
  ] as const) {
    const [manifest, res, body] = await call<[Manifest, Res, string]>((cb) => client.getManifest({ ref }, cb));
    t.equal(res.statusCode, 200, `getManifest ${ref}: 200`);
    t.equal(body, img.manifest.toString('utf8'), `getManifest ${ref}: the seeded ${what} byte for byte`);
    t.equal(res.headers['docker-content-digest'], img.manifestDigest, `getManifest ${ref}: Docker-Content-Digest`);
    t.equal(res.headers['content-type'], img.mediaType, `getManifest ${ref}: Content-Type`);
    t.same(manifest.layers?.map((l) => l.digest), img.layers.map((l) => l.digest), `getManifest ${ref}: layers`);
  }
  const [indexParsed, indexRes, indexBody] = await call<[Manifest, Res, string]>((cb) => client.getManifest({ ref: 'multi' }, cb));
  t.equal(indexBody, index.toString('utf8'), 'getManifest of an index (acceptManifestLists): byte for byte');
  t.equal(indexRes.headers['docker-content-digest'], sha256(index), 'index digest');
  t.same(indexParsed.manifests?.map((m) => m.digest), [oci.manifestDigest, arm.manifestDigest], 'index children');

  const missing = await failure(call((cb) => client.getManifest({ ref: 'nope' }, cb)));
  t.equal(missing?.statusCode, 404, 'getManifest of an unknown tag: 404 error');

  for (const [i, blob] of [oci.config, ...oci.layers].entries()) {
    const [heads] = await call<[Res[]]>((cb) => client.headBlob({ digest: blob.digest }, cb));
    const head = heads[heads.length - 1]!;
    t.equal(head.statusCode, 200, `headBlob ${i}: 200`);
    t.equal(head.headers['content-length'], String(blob.data.length), `headBlob ${i}: Content-Length`);
    t.equal(heads[0]!.headers['docker-content-digest'], blob.digest, `headBlob ${i}: Docker-Content-Digest`);

    const [stream] = await call<[Res, Res[]]>((cb) => client.createBlobReadStream({ digest: blob.digest }, cb));
    const bytes = await readAll(stream);
    t.ok(bytes.equals(blob.data), `createBlobReadStream ${i}: ${blob.data.length} bytes equal`);
  }
  const unknownBlob = await failure(call((cb) => client.headBlob({ digest: sha256('not here') }, cb)));
  t.equal(unknownBlob?.statusCode, 404, 'headBlob of an unknown digest: 404 error');
  // A blob of another repository is not served through this one.
  await pushImage(reg.url, 'drc/other', 'v1', buildImage({ layers: 1 }));
  const foreign = buildImage({ layers: 1 });
  await pushImage(reg.url, 'drc/other', 'v2', foreign);
  const foreignHead = await failure(call((cb) => client.headBlob({ digest: foreign.layers[0]!.digest }, cb)));
  t.equal(foreignHead?.statusCode, 404, "headBlob of another repository's blob: 404 error");

  // Push: two new blobs (a gzip tar layer and a config naming its diff id), then a Docker schema2 manifest.
  log.clear();
  const tar = tarOf([{ name: 'drc.txt', data: randomBytes(50_000) }]);
  const layer = blobOf(gzipSync(tar), 'application/vnd.docker.image.rootfs.diff.tar.gzip');
  const config = blobOf(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [sha256(tar)] } })),
    'application/vnd.docker.container.image.v1+json',
  );
  for (const [what, blob] of [['layer', layer], ['config', config]] as const) {
    const [res] = await call<[Res]>((cb) =>
      client.blobUpload({ digest: blob.digest, contentLength: blob.data.length, stream: Readable.from([blob.data]) }, cb),
    );
    t.equal(res.statusCode, 201, `blobUpload ${what}: 201`);
    t.equal(res.headers['docker-content-digest'], blob.digest, `blobUpload ${what}: Docker-Content-Digest`);
    t.equal(res.headers.location, `/v2/drc/app/blobs/${blob.digest}`, `blobUpload ${what}: Location of the blob`);
  }
  t.equal(log.find('POST', /^\/v2\/drc\/app\/blobs\/uploads\/?$/).filter((e) => e.status === 202).length, 2, 'two POST uploads/ -> 202');
  t.same(
    log.find('PUT', /^\/v2\/drc\/app\/blobs\/uploads\/[^/]+$/).map((e) => [e.query.get('digest'), e.contentLength, e.status]),
    [layer, config].map((b) => [b.digest, b.data.length, 201]),
    'each blob in one PUT ?digest= carrying the whole body -> 201',
    { requests: log.text() },
  );
  t.equal(log.find('PATCH', /./).length, 0, 'no PATCH');
  for (const blob of [layer, config]) {
    const got = await fetch(`${reg.url}/v2/drc/app/blobs/${blob.digest}`);
    t.ok(got.status === 200 && Buffer.from(await got.arrayBuffer()).equals(blob.data), `uploaded ${blob.digest.slice(0, 19)} served byte for byte`);
  }

  // The client sends exactly this string, with Content-Type derived from schemaVersion (v2 -> Docker schema2).
  const manifestStr = JSON.stringify(
    {
      schemaVersion: 2,
      mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
      config: { mediaType: config.mediaType, size: config.data.length, digest: config.digest },
      layers: [
        { mediaType: layer.mediaType, size: layer.data.length, digest: layer.digest },
        { mediaType: docker.layers[0]!.mediaType, size: docker.layers[0]!.data.length, digest: docker.layers[0]!.digest },
      ],
    },
    null,
    3,
  );
  const [putRes, putDigest, putLocation] = await call<[Res, string, string]>((cb) => client.putManifest({ ref: 'pushed', manifest: manifestStr }, cb));
  t.equal(putRes.statusCode, 201, 'putManifest: 201');
  t.equal(putDigest, sha256(manifestStr), 'putManifest: digest of the exact bytes sent');
  t.equal(putLocation, `/v2/drc/app/manifests/${sha256(manifestStr)}`, 'putManifest: Location by digest');

  const [pushed, pushedRes, pushedBody] = await call<[Manifest, Res, string]>((cb) => client.getManifest({ ref: 'pushed' }, cb));
  t.equal(pushedBody, manifestStr, 'getManifest of the pushed tag: byte for byte (indentation kept)');
  t.equal(pushedRes.headers['docker-content-digest'], sha256(manifestStr), 'its digest');
  t.equal(pushedRes.headers['content-type'], 'application/vnd.docker.distribution.manifest.v2+json', 'its media type');
  t.same(pushed.layers?.map((l) => l.digest), [layer.digest, docker.layers[0]!.digest], 'its layers');
  const [byDigest] = await call<[Manifest, Res, string]>((cb) => client.getManifest({ ref: sha256(manifestStr) }, cb));
  t.same(byDigest, pushed, 'getManifest by digest: the same manifest');
  const [tagsAfter] = await call<[{ name: string; tags: string[] }, Res]>((cb) => client.listTags(cb));
  t.same(tagsAfter.tags, ['multi', 'pushed', 'v1', 'v2'], 'listTags shows the pushed tag');

  // A manifest naming a blob the repository does not have is refused, and the client reports it.
  const bad = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: config.mediaType, size: config.data.length, digest: config.digest },
    layers: [{ mediaType: layer.mediaType, size: 10, digest: sha256('never uploaded') }],
  });
  const refused = await failure(call((cb) => client.putManifest({ ref: 'bad', manifest: bad }, cb)));
  t.ok(refused, 'putManifest with an unknown layer fails');
  t.match(String(refused?.message), /MANIFEST_BLOB_UNKNOWN|blob/i, 'with the registry error', { err: refused });
  const badTag = await fetch(`${reg.url}/v2/drc/app/manifests/bad`);
  t.equal(badTag.status, 404, 'and no tag was created');
});
