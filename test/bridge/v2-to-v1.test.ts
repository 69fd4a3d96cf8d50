import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { EMPTY_TAR, EMPTY_TAR_DIGEST } from '../../src/bridge/v2-to-v1';
import { startRegistry } from '../helpers/server';
import { imageChain, pullV1, pushV1, tarOf, type PulledImage } from '../helpers/v1';
import { blobOf, buildImage, pushBlob, pushImage, putManifest, sha256, type Blob } from '../helpers/v2';

// The v2 -> v1 bridge over HTTP, in process: a v2-pushed image is a v1 chain for the Docker 1.x pull flow,
// with distribution v2.x's schema 1 ids (one v1 image per history entry, empty_layer entries on the 32-byte
// gzipped empty tar), the same layer bytes, consistent ancestry, the same ids every time. An index gives its
// linux/amd64 entry; zstd and foreign layers are simply absent; a v1 tag of the same name wins for v1.
// Real pushers (dockerd, buildah) and pullers (docker-registry-client v1) are in test/e2e/bridge-v2-to-v1.test.ts.

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const hex = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');

interface Custom {
  config: Blob;
  layers: Blob[];
  manifest: Buffer;
}

/** A Docker schema 2 image with a history: layer, CMD (empty), layer; or whatever layers/config are given. */
function customImage(opts: { layerType?: string; foreign?: boolean; os?: string; history?: boolean } = {}): Custom {
  const tars = [tarOf([{ name: 'a.txt', data: Buffer.from('first') }]), tarOf([{ name: 'b.txt', data: Buffer.from('second') }])];
  const layers = tars.map((tar) => blobOf(gzipSync(tar), opts.layerType ?? DOCKER_LAYER));
  const config = blobOf(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: opts.os ?? 'linux',
        config: { Cmd: ['/b.txt'], Env: ['PATH=/bin'] },
        created: '2024-01-02T03:04:05Z',
        rootfs: { type: 'layers', diff_ids: tars.map((x) => sha256(x)) },
        ...(opts.history === false
          ? {}
          : {
              history: [
                { created: '2024-01-01T00:00:00Z', created_by: '/bin/sh -c #(nop) ADD a.txt /', author: 'me' },
                { created: '2024-01-01T00:00:01Z', created_by: '/bin/sh -c #(nop) CMD ["/b.txt"]', empty_layer: true },
                { created: '2024-01-02T03:04:05Z', created_by: '/bin/sh -c #(nop) ADD b.txt /', comment: 'second' },
              ],
            }),
      }),
    ),
    DOCKER_CONFIG,
  );
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: DOCKER_MANIFEST,
      config: { mediaType: DOCKER_CONFIG, digest: config.digest, size: config.data.length },
      layers: layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.data.length, ...(opts.foreign ? { urls: ['https://example.invalid/l'] } : {}) })),
    }),
  );
  return { config, layers, manifest };
}

async function push(base: string, repo: string, tag: string, img: Custom, foreign = false): Promise<void> {
  await pushBlob(base, repo, img.config);
  if (!foreign) for (const l of img.layers) await pushBlob(base, repo, l);
  const r = await putManifest(base, repo, tag, img.manifest, DOCKER_MANIFEST);
  if (r.status !== 201) throw new Error(`manifest PUT ${r.status} ${await r.text()}`);
}

/** Each image's parent is the next one in the ancestry; the root has none. */
function consistent(chain: PulledImage[]): boolean {
  return chain.every((img, i) => {
    const json = JSON.parse(img.json.toString()) as { id: string; parent?: string };
    return json.id === img.id && json.parent === (i === 0 ? undefined : chain[i - 1]!.id);
  });
}

t.test('a Docker schema 2 image with history is a v1 chain with distribution ids', async (t) => {
  let reg = await startRegistry(t);
  const img = customImage();
  await push(reg.url, 'v2only/app', 'latest', img);
  const chain = await pullV1(reg.url, 'v2only/app', 'latest'); // root first
  t.equal(chain.length, 3, 'one v1 image per history entry');
  t.ok(consistent(chain), 'ids, parents and ancestry agree');
  // distribution v2.x: sha256("<blobsum hex> <parent>"), the top one + " <config bytes>".
  const id0 = hex(`${img.layers[0]!.digest.slice(7)} `);
  const id1 = hex(`${EMPTY_TAR_DIGEST.slice(7)} ${id0}`);
  const id2 = hex(Buffer.concat([Buffer.from(`${img.layers[1]!.digest.slice(7)} ${id1} `), img.config.data]));
  t.same(chain.map((c) => c.id), [id0, id1, id2], 'ids as distribution derived them');
  t.same(chain[0]!.layer, img.layers[0]!.data, 'layer bytes as pushed');
  t.same(chain[1]!.layer, EMPTY_TAR, 'the empty_layer entry: the gzipped empty tar');
  t.equal(sha256(EMPTY_TAR), EMPTY_TAR_DIGEST);
  t.same(chain[2]!.layer, img.layers[1]!.data);
  t.same(chain.map((c) => c.size), [img.layers[0]!.data.length, 32, img.layers[1]!.data.length], 'X-Docker-Size: the layer sizes');
  const lower = JSON.parse(chain[0]!.json.toString());
  t.same(lower, { id: id0, created: '2024-01-01T00:00:00Z', container_config: { Cmd: ['/bin/sh -c #(nop) ADD a.txt /'] }, author: 'me', Size: img.layers[0]!.data.length });
  t.equal(JSON.parse(chain[1]!.json.toString()).throwaway, true, 'throwaway marks the empty layer');
  const top = JSON.parse(chain[2]!.json.toString());
  t.same(top.config, { Cmd: ['/b.txt'], Env: ['PATH=/bin'] }, 'the top one carries the config');
  t.equal(top.parent, id1);
  t.notOk('history' in top || 'rootfs' in top, 'without history and rootfs');

  const images = (await (await fetch(`${reg.url}/v1/repositories/v2only/app/images`)).json()) as { id: string }[];
  t.same(new Set(images.map((i) => i.id)), new Set([id0, id1, id2]), 'the index image list names them');
  reg = await reg.restart();
  const tags = (await (await fetch(`${reg.url}/v1/repositories/v2only/app/tags`)).json()) as Record<string, string>;
  t.same(tags, { latest: id2 }, 'the same ids after a restart');
  t.equal(await (await fetch(`${reg.url}/v1/repositories/v2only/app/tags/latest`)).json(), id2);
  const anc = (await (await fetch(`${reg.url}/v1/images/${id2}/ancestry`)).json()) as string[];
  t.same(anc, [id2, id1, id0], 'ancestry, top first');
});

t.test('garbage collection: the empty tar no manifest names comes back when served; a deleted manifest takes its v1 images', async (t) => {
  const reg = await startRegistry(t, { gc: { delay: 0, interval: 0 } });
  const img = customImage();
  await push(reg.url, 'v2only/gc', 'latest', img);
  const before = await pullV1(reg.url, 'v2only/gc', 'latest');
  const report = await reg.app.registry.gc.run();
  t.ok(report.blobs >= 1, 'the collection frees the empty tar', { report });
  const after = await pullV1(reg.url, 'v2only/gc', 'latest');
  t.same(after.map((c) => c.layer), before.map((c) => c.layer), 'the chain still pulls whole');
  const digest = sha256(img.manifest);
  t.equal((await fetch(`${reg.url}/v2/v2only/gc/manifests/${digest}`, { method: 'DELETE' })).status, 202);
  t.equal((await fetch(`${reg.url}/v1/images/${before[2]!.id}/json`)).status, 404, 'its v1 images are gone with the manifest');
  t.same(await (await fetch(`${reg.url}/v1/repositories/v2only/gc/tags`)).json(), {}, 'and its tag');
});

t.test('OCI image without history, an index, a v1 tag of the same name, images with no v1 form', async (t) => {
  const reg = await startRegistry(t);
  const oci = buildImage({ layers: 2 });
  await pushImage(reg.url, 'v2only/oci', 'v1', oci);
  const chain = await pullV1(reg.url, 'v2only/oci', 'v1');
  t.same(chain.map((c) => c.layer), oci.layers.map((l) => l.data), 'one v1 image per layer when there is no history');
  t.ok(consistent(chain));

  const amd = buildImage({ layers: 1, arch: 'amd64' });
  const arm = buildImage({ layers: 1, arch: 'arm64' });
  for (const i of [amd, arm]) await pushImage(reg.url, 'v2only/multi', i.manifestDigest, i);
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [arm, amd].map((i, n) => ({ mediaType: i.mediaType, digest: i.manifestDigest, size: i.manifest.length, platform: { os: 'linux', architecture: n ? 'amd64' : 'arm64' } })),
  }));
  t.equal((await putManifest(reg.url, 'v2only/multi', 'latest', index, 'application/vnd.oci.image.index.v1+json')).status, 201);
  const multi = await pullV1(reg.url, 'v2only/multi', 'latest');
  t.same(multi.map((c) => c.layer), amd.layers.map((l) => l.data), 'the linux/amd64 entry');

  // zstd layers, foreign layers, a Windows image: absent from v1, no error anywhere.
  await push(reg.url, 'v2only/mixed', 'zstd', customImage({ layerType: 'application/vnd.oci.image.layer.v1.tar+zstd' }));
  await push(reg.url, 'v2only/mixed', 'foreign', customImage({ layerType: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', foreign: true }), true);
  await push(reg.url, 'v2only/mixed', 'windows', customImage({ os: 'windows' }));
  await push(reg.url, 'v2only/mixed', 'fine', customImage());
  const res = await fetch(`${reg.url}/v1/repositories/v2only/mixed/tags`);
  t.equal(res.status, 200);
  t.same(Object.keys((await res.json()) as object), ['fine'], 'only the convertible tag is listed');
  for (const tag of ['zstd', 'foreign', 'windows']) {
    t.equal((await fetch(`${reg.url}/v1/repositories/v2only/mixed/tags/${tag}`)).status, 404, `${tag}: not a v1 tag`);
  }

  // Both protocols tag "same": each stays what its protocol pushed.
  const v1chain = imageChain(1);
  await pushV1(reg.url, 'v2only/both', 'same', v1chain);
  await push(reg.url, 'v2only/both', 'same', customImage());
  await push(reg.url, 'v2only/both', 'other', customImage());
  const both = (await (await fetch(`${reg.url}/v1/repositories/v2only/both/tags`)).json()) as Record<string, string>;
  t.equal(both.same, v1chain[0]!.id, 'v1 clients see the v1 tag');
  t.ok(both.other, 'and the v2-only tag');
  const m = await fetch(`${reg.url}/v2/v2only/both/manifests/same`, { headers: { accept: DOCKER_MANIFEST } });
  t.equal(sha256(Buffer.from(await m.arrayBuffer())), sha256(customImage().manifest), 'v2 clients see the v2 push (its bytes are deterministic)');
  const pulledV1 = await pullV1(reg.url, 'v2only/both', 'same');
  t.same(pulledV1.map((p) => p.layer), v1chain.map((c) => c.layer), 'v1 pull gives what v1 pushed');
});
