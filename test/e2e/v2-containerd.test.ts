import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startContainerd, type Containerd } from '../helpers/containerd';
import { recordRequests, type RequestLog } from '../helpers/request-log';
import { startRegistry, tempDir, type TestRegistry } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { tarOf } from '../helpers/v1';
import { buildImage, pushImage, putManifest, sha256, type BuiltImage } from '../helpers/v2';

// Acceptance: a standalone containerd 1.6 (Debian package) driven by `ctr` pulls and pushes through the
// v2 API over plain HTTP (real-clients.md section 5): OCI and Docker schema2 images, a multi-arch OCI
// index with --all-platforms, a push to a new repository (blobs mounted from the source repository) and
// a push of a freshly imported image (blobs uploaded the monolithic way: POST, then one PUT ?digest= with
// the body, never PATCH). Every byte ctr stored or sent is compared with what was seeded.

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';

interface ImageRow {
  ref: string;
  type: string;
  digest: string;
  platforms: string;
}

/** `ctr images ls` rows (REF TYPE DIGEST SIZE PLATFORMS LABELS; SIZE is two words, e.g. "4.3 KiB"). */
async function images(c: Containerd): Promise<ImageRow[]> {
  const r = await c.ctr(['images', 'ls']);
  if (r.code !== 0) throw new Error(`ctr images ls: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .slice(1)
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const f = l.trim().split(/\s+/);
      return { ref: f[0]!, type: f[1]!, digest: f[2]!, platforms: f[5] ?? '' };
    });
}

/** Bytes containerd's content store holds for a digest. */
async function content(c: Containerd, digest: string): Promise<Buffer> {
  const r = await c.ctr(['content', 'get', digest]);
  if (r.code !== 0) throw new Error(`ctr content get ${digest}: ${r.stderr}`);
  return r.stdoutBytes;
}

async function httpBytes(url: string, accept?: string): Promise<{ status: number; body: Buffer; headers: Headers }> {
  const res = await fetch(url, accept ? { headers: { accept } } : {});
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

/** Every blob and the manifest of `image` are in containerd's content store, byte for byte. */
async function assertStored(t: Test, c: Containerd, image: BuiltImage, what: string): Promise<void> {
  t.ok((await content(c, image.manifestDigest)).equals(image.manifest), `${what}: manifest stored byte for byte`);
  t.ok((await content(c, image.config.digest)).equals(image.config.data), `${what}: config stored byte for byte`);
  for (const [i, l] of image.layers.entries()) {
    t.ok((await content(c, l.digest)).equals(l.data), `${what}: layer ${i} stored byte for byte`);
  }
}

/** The registry serves `image` under repo:tag byte for byte (manifest by tag and by digest, every blob). */
async function assertServed(t: Test, reg: TestRegistry, repo: string, tag: string, image: BuiltImage): Promise<void> {
  const byTag = await httpBytes(`${reg.url}/v2/${repo}/manifests/${tag}`, image.mediaType);
  t.equal(byTag.status, 200, `${repo}:${tag} manifest GET 200`);
  t.ok(byTag.body.equals(image.manifest), `${repo}:${tag} manifest byte-identical`);
  t.equal(byTag.headers.get('docker-content-digest'), image.manifestDigest, `${repo}:${tag} Docker-Content-Digest`);
  t.equal(byTag.headers.get('content-type'), image.mediaType, `${repo}:${tag} Content-Type`);
  const byDigest = await httpBytes(`${reg.url}/v2/${repo}/manifests/${image.manifestDigest}`, image.mediaType);
  t.ok(byDigest.status === 200 && byDigest.body.equals(image.manifest), `${repo} manifest by digest byte-identical`);
  for (const [i, b] of [image.config, ...image.layers].entries()) {
    const got = await httpBytes(`${reg.url}/v2/${repo}/blobs/${b.digest}`);
    t.equal(got.status, 200, `${repo} blob ${i} GET 200`);
    t.ok(got.body.equals(b.data), `${repo} blob ${i} byte-identical (${b.data.length} bytes)`);
  }
}

/** An OCI image layout tar holding one image tagged `tag` (what `ctr images import` reads). */
function ociLayoutTar(image: BuiltImage, tag: string): Buffer {
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        {
          mediaType: image.mediaType,
          digest: image.manifestDigest,
          size: image.manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': tag },
        },
      ],
    }),
  );
  const blob = (digest: string, data: Buffer) => ({ name: `blobs/sha256/${digest.slice('sha256:'.length)}`, data });
  return tarOf([
    { name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: 'index.json', data: index },
    blob(image.manifestDigest, image.manifest),
    blob(image.config.digest, image.config.data),
    ...image.layers.map((l) => blob(l.digest, l.data)),
  ]);
}

t.test('ctr (standalone containerd) pulls and pushes over the v2 API', async (t) => {
  if (!requireTools(t, ['containerd', 'ctr'])) return;

  const reg = await startRegistry(t);
  const oci = buildImage({ layers: 2 });
  const docker = buildImage({ layers: 2, format: 'docker' });
  await pushImage(reg.url, 'ctr/oci', 'v1', oci);
  await pushImage(reg.url, 'ctr/docker', 'v1', docker);

  const log: RequestLog = recordRequests(reg.app.server);
  const c = await startContainerd(t);
  const h = reg.host;

  await t.test('pull of an OCI image', async (t) => {
    log.clear();
    const r = await c.ctr(['images', 'pull', '--plain-http', `${h}/ctr/oci:v1`]);
    t.equal(r.code, 0, 'ctr images pull exits 0', { stderr: r.stderr, requests: log.text() });
    const row = (await images(c)).find((i) => i.ref === `${h}/ctr/oci:v1`);
    t.ok(row, 'the image is listed');
    t.equal(row?.digest, oci.manifestDigest, 'listed with the seeded manifest digest');
    t.equal(row?.type, oci.mediaType, 'listed as an OCI manifest');
    await assertStored(t, c, oci, 'oci');
    // Resolution is HEAD (or GET) manifests/<tag>; the answer must carry the digest.
    const resolve = log.find('HEAD', /\/manifests\/v1$/)[0] ?? log.find('GET', /\/manifests\/v1$/)[0];
    t.equal(resolve?.digest, oci.manifestDigest, 'tag resolution answered with Docker-Content-Digest');
    t.equal(log.all().filter((e) => e.status >= 400).length, 0, 'no request failed', { requests: log.text() });
  });

  await t.test('pull of a Docker schema2 image', async (t) => {
    const r = await c.ctr(['images', 'pull', '--plain-http', `${h}/ctr/docker:v1`]);
    t.equal(r.code, 0, 'ctr images pull exits 0', { stderr: r.stderr });
    const row = (await images(c)).find((i) => i.ref === `${h}/ctr/docker:v1`);
    t.equal(row?.digest, docker.manifestDigest, 'listed with the seeded manifest digest');
    t.equal(row?.type, docker.mediaType, 'listed as a Docker schema2 manifest');
    await assertStored(t, c, docker, 'docker');
  });

  await t.test('push of a pulled image to a new repository mounts its blobs', async (t) => {
    const tag = await c.ctr(['images', 'tag', `${h}/ctr/oci:v1`, `${h}/ctr/pushed:v1`]);
    t.equal(tag.code, 0, 'ctr images tag exits 0', { stderr: tag.stderr });
    log.clear();
    const r = await c.ctr(['images', 'push', '--plain-http', `${h}/ctr/pushed:v1`]);
    t.equal(r.code, 0, 'ctr images push exits 0', { stderr: r.stderr, requests: log.text() });
    await assertServed(t, reg, 'ctr/pushed', 'v1', oci);

    const mounts = log.find('POST', /^\/v2\/ctr\/pushed\/blobs\/uploads\/?$/).filter((e) => e.query.has('mount'));
    t.same(
      mounts.map((e) => [e.query.get('mount'), e.query.get('from'), e.status]).sort(),
      [oci.config, ...oci.layers].map((b) => [b.digest, 'ctr/oci', 201]).sort(),
      'every blob mounted from ctr/oci (POST ?mount=&from= -> 201)',
      { requests: log.text() },
    );
    t.equal(log.find('PATCH', /./).length, 0, 'no PATCH');
    t.equal(log.find('PUT', /\/blobs\/uploads\//).length, 0, 'no blob bytes uploaded');
    const manifestPut = log.find('PUT', /^\/v2\/ctr\/pushed\/manifests\/v1$/);
    t.equal(manifestPut.length, 1, 'one manifest PUT by tag');
    t.equal(manifestPut[0]?.status, 201, 'manifest PUT 201');
    t.equal(manifestPut[0]?.digest, oci.manifestDigest, 'manifest PUT answered with its digest');
  });

  await t.test('pull of a multi-arch OCI index with --all-platforms', async (t) => {
    const amd = buildImage({ layers: 1, arch: 'amd64' });
    const arm = buildImage({ layers: 2, arch: 'arm64' });
    for (const img of [amd, arm]) await pushImage(reg.url, 'ctr/multi', img.manifestDigest, img);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: amd.mediaType, digest: amd.manifestDigest, size: amd.manifest.length, platform: { architecture: 'amd64', os: 'linux' } },
          { mediaType: arm.mediaType, digest: arm.manifestDigest, size: arm.manifest.length, platform: { architecture: 'arm64', os: 'linux' } },
        ],
      }),
    );
    const put = await putManifest(reg.url, 'ctr/multi', 'v1', index, OCI_INDEX);
    t.equal(put.status, 201, 'index PUT by tag 201');
    t.equal(put.headers.get('docker-content-digest'), sha256(index), 'index digest');

    log.clear();
    const r = await c.ctr(['images', 'pull', '--plain-http', '--all-platforms', `${h}/ctr/multi:v1`]);
    t.equal(r.code, 0, 'ctr images pull --all-platforms exits 0', { stderr: r.stderr, requests: log.text() });
    const row = (await images(c)).find((i) => i.ref === `${h}/ctr/multi:v1`);
    t.equal(row?.digest, sha256(index), 'listed with the index digest');
    t.equal(row?.type, OCI_INDEX, 'listed as an OCI index');
    t.same((row?.platforms ?? '').split(',').sort(), ['linux/amd64', 'linux/arm64'], 'both platforms');
    t.ok((await content(c, sha256(index))).equals(index), 'index stored byte for byte');
    await assertStored(t, c, amd, 'amd64');
    await assertStored(t, c, arm, 'arm64');
    for (const img of [amd, arm]) {
      t.ok(log.find('GET', new RegExp(`/manifests/${img.manifestDigest}$`)).some((e) => e.status === 200), 'child manifest fetched by digest');
    }
  });

  await t.test('push of a freshly imported image uploads its blobs (POST, one PUT with the body)', async (t) => {
    const fresh = buildImage({ layers: 2, layerBytes: 300_000 });
    const dir = tempDir(t, 'ctr-import-');
    const tarFile = path.join(dir, 'fresh.tar');
    writeFileSync(tarFile, ociLayoutTar(fresh, 'v1'));
    const imp = await c.ctr(['images', 'import', '--base-name', `${h}/ctr/fresh`, tarFile]);
    t.equal(imp.code, 0, 'ctr images import exits 0', { stdout: imp.stdout, stderr: imp.stderr });
    const row = (await images(c)).find((i) => i.ref === `${h}/ctr/fresh:v1`);
    t.equal(row?.digest, fresh.manifestDigest, 'imported under the expected name');

    log.clear();
    const r = await c.ctr(['images', 'push', '--plain-http', `${h}/ctr/fresh:v1`]);
    t.equal(r.code, 0, 'ctr images push exits 0', { stderr: r.stderr, requests: log.text() });
    await assertServed(t, reg, 'ctr/fresh', 'v1', fresh);

    t.equal(log.find('PATCH', /./).length, 0, 'no PATCH: ctr uploads monolithically', { requests: log.text() });
    t.equal(log.all().filter((e) => e.query.has('mount')).length, 0, 'nothing to mount from: no mount attempt');
    const starts = log.find('POST', /^\/v2\/ctr\/fresh\/blobs\/uploads\/?$/);
    t.equal(starts.length, 3, 'one POST uploads/ per blob');
    t.ok(starts.every((e) => e.status === 202), 'each POST answered 202');
    const puts = log.find('PUT', /^\/v2\/ctr\/fresh\/blobs\/uploads\/[^/]+$/);
    t.same(
      puts.map((e) => [e.query.get('digest'), e.contentLength, e.status]).sort(),
      [fresh.config, ...fresh.layers].map((b) => [b.digest, b.data.length, 201]).sort(),
      'one PUT ?digest= per blob carrying the whole body, answered 201',
      { requests: log.text() },
    );
    t.equal(log.find('PUT', /^\/v2\/ctr\/fresh\/manifests\/v1$/)[0]?.status, 201, 'manifest PUT 201');
  });
});
