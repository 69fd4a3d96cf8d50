import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { startDockerd, type Dockerd } from '../helpers/dockerd';
import { recordRequests, type RequestLog } from '../helpers/request-log';
import { startRegistry, tempDir, type TestRegistry } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { buildImage, pushImage, putManifest, sha256, type BuiltImage } from '../helpers/v2';

// Acceptance: Debian's dockerd 20.10 (vfs, private socket) pulls and pushes through the v2 API over plain
// HTTP (127.0.0.0/8 is an insecure registry by default): pull of a seeded OCI image, a Docker schema2
// image and an OCI index; a FROM-scratch build pushed, removed, pulled again with the file intact; and a
// push of the same image to another repository that mounts the layer ("Mounted from ...").
// Docker resolves with HEAD manifests/<tag> then GET manifests/<digest>, and HEADs each blob after upload.

const OCI_INDEX = 'application/vnd.oci.image.index.v1+json';
const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const ACCEPT_ALL = [DOCKER_MANIFEST, 'application/vnd.oci.image.manifest.v1+json', OCI_INDEX].join(', ');

interface Inspect {
  Id: string;
  RepoTags: string[] | null;
  RepoDigests: string[] | null;
  Architecture: string;
  RootFS: { Type: string; Layers: string[] };
}

async function inspect(d: Dockerd, ref: string): Promise<Inspect | undefined> {
  const r = await d.docker(['image', 'inspect', ref]);
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as Inspect[])[0];
}

/** Regular files of an uncompressed ustar/GNU tar (enough for a layer Docker wrote). */
function tarFiles(tar: Buffer): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (let off = 0; off + 512 <= tar.length; ) {
    const h = tar.subarray(off, off + 512);
    if (h.every((b) => b === 0)) break;
    const str = (s: number, n: number) => h.subarray(s, s + n).toString('utf8').replace(/\0.*$/s, '');
    const name = (str(345, 155) ? str(345, 155) + '/' : '') + str(0, 100);
    const size = parseInt(str(124, 12).trim() || '0', 8);
    const type = str(156, 1);
    if (type === '0' || type === '') files.set(name.replace(/^\.?\//, ''), tar.subarray(off + 512, off + 512 + size));
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/**
 * `docker pull` of a seeded image: exit 0, tag resolved by HEAD, manifest fetched by digest, the image
 * id is the config digest and the repo digest the seeded manifest (or index) digest.
 */
async function pullSeeded(t: Test, d: Dockerd, reg: TestRegistry, log: RequestLog, repo: string, digest: string, image: BuiltImage) {
  log.clear();
  const ref = `${reg.host}/${repo}:v1`;
  const r = await d.docker(['pull', ref]);
  t.equal(r.code, 0, `docker pull ${repo}:v1 exits 0`, { stdout: r.stdout, stderr: r.stderr, requests: log.text() });
  t.match(r.stdout, `Digest: ${digest}`, 'docker reports the seeded digest');
  const head = log.find('HEAD', new RegExp(`^/v2/${repo}/manifests/v1$`));
  t.equal(head[0]?.status, 200, 'HEAD manifests/<tag> 200');
  t.equal(head[0]?.digest, digest, 'HEAD carries Docker-Content-Digest');
  t.ok(log.find('GET', new RegExp(`^/v2/${repo}/manifests/${digest}$`)).some((e) => e.status === 200), 'GET manifests/<digest> 200');
  const info = await inspect(d, ref);
  t.equal(info?.Id, image.config.digest, 'image id is the config digest');
  t.same(info?.RepoDigests, [`${reg.host}/${repo}@${digest}`], 'repo digest');
  const config = JSON.parse(image.config.data.toString('utf8')) as { rootfs: { diff_ids: string[] } };
  t.same(info?.RootFS.Layers, config.rootfs.diff_ids, 'layers extracted with the diff ids the config names');
  t.equal(log.all().filter((e) => e.status >= 400).length, 0, 'no request failed', { requests: log.text() });
}

t.test('docker (dockerd 20.10) pulls and pushes over the v2 API', async (t) => {
  if (!requireTools(t, ['dockerd', 'docker'])) return;

  const reg = await startRegistry(t);
  const log = recordRequests(reg.app.server);
  const d = await startDockerd(t);
  const h = reg.host;

  await t.test('pull of a seeded OCI image', async (t) => {
    const img = buildImage({ layers: 2 });
    await pushImage(reg.url, 'docker/oci', 'v1', img);
    await pullSeeded(t, d, reg, log, 'docker/oci', img.manifestDigest, img);
  });

  await t.test('pull of a seeded Docker schema2 image', async (t) => {
    const img = buildImage({ layers: 2, format: 'docker' });
    await pushImage(reg.url, 'docker/s2', 'v1', img);
    await pullSeeded(t, d, reg, log, 'docker/s2', img.manifestDigest, img);
  });

  await t.test('pull of a seeded OCI index picks linux/amd64', async (t) => {
    const amd = buildImage({ layers: 1, arch: 'amd64' });
    const arm = buildImage({ layers: 1, arch: 'arm64' });
    for (const img of [amd, arm]) await pushImage(reg.url, 'docker/multi', img.manifestDigest, img);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_INDEX,
        manifests: [
          { mediaType: arm.mediaType, digest: arm.manifestDigest, size: arm.manifest.length, platform: { architecture: 'arm64', os: 'linux' } },
          { mediaType: amd.mediaType, digest: amd.manifestDigest, size: amd.manifest.length, platform: { architecture: 'amd64', os: 'linux' } },
        ],
      }),
    );
    const put = await putManifest(reg.url, 'docker/multi', 'v1', index, OCI_INDEX);
    t.equal(put.status, 201, 'index PUT 201');
    await pullSeeded(t, d, reg, log, 'docker/multi', sha256(index), amd);
    t.equal(log.find('GET', new RegExp(`/manifests/${arm.manifestDigest}$`)).length, 0, 'the arm64 manifest is not fetched');
  });

  await t.test('build FROM scratch, push, rmi, pull: the file round-trips; a second repository mounts the layer', async (t) => {
    const dir = tempDir(t, 'docker-build-');
    const ctx = path.join(dir, 'ctx');
    mkdirSync(ctx);
    const hello = `hello from the v2 e2e test ${randomBytes(8).toString('hex')}\n`;
    writeFileSync(path.join(ctx, 'hello.txt'), hello);
    writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\nCMD ["/hello.txt"]\n');
    const ref = `${h}/docker/built:v1`;
    const build = await d.docker(['build', '-t', ref, ctx], { env: { DOCKER_BUILDKIT: '0' } });
    t.equal(build.code, 0, 'docker build exits 0', { stdout: build.stdout, stderr: build.stderr });
    const built = await inspect(d, ref);
    t.equal(built?.RootFS.Layers.length, 1, 'one layer');

    log.clear();
    const push = await d.docker(['push', ref]);
    t.equal(push.code, 0, 'docker push exits 0', { stdout: push.stdout, stderr: push.stderr, requests: log.text() });
    const pushed = /v1: digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(push.stdout);
    t.ok(pushed, 'docker prints the pushed digest', { stdout: push.stdout });
    const digest = pushed?.[1] ?? '';

    // What the registry now holds, over plain HTTP.
    const got = await fetch(`${reg.url}/v2/docker/built/manifests/v1`, { headers: { accept: ACCEPT_ALL } });
    const manifestBytes = Buffer.from(await got.arrayBuffer());
    t.equal(got.status, 200, 'manifest GET 200');
    t.equal(got.headers.get('content-type'), DOCKER_MANIFEST, 'Docker schema2 manifest');
    t.equal(got.headers.get('docker-content-digest'), digest, 'served digest = pushed digest');
    t.equal(sha256(manifestBytes), digest, 'served bytes hash to the pushed digest');
    t.equal(manifestBytes.length, Number(pushed?.[2]), 'served size = pushed size');
    const manifest = JSON.parse(manifestBytes.toString('utf8')) as { config: { digest: string }; layers: { digest: string; size: number }[] };
    t.equal(manifest.config.digest, built?.Id, 'manifest config is the built image id');
    t.equal(manifest.layers.length, 1, 'manifest names one layer');
    const layerDigest = manifest.layers[0]?.digest ?? '';
    const layer = Buffer.from(await (await fetch(`${reg.url}/v2/docker/built/blobs/${layerDigest}`)).arrayBuffer());
    t.equal(sha256(layer), layerDigest, 'layer blob bytes match its digest');
    t.equal(tarFiles(gunzipSync(layer)).get('hello.txt')?.toString('utf8'), hello, 'the layer holds hello.txt with its content');

    // Protocol: each uploaded blob is verified with a HEAD after its final PUT.
    const uploaded = log.find('PUT', /^\/v2\/docker\/built\/blobs\/uploads\//);
    t.same(uploaded.map((e) => e.query.get('digest')).sort(), [manifest.config.digest, layerDigest].sort(), 'config and layer uploaded');
    t.ok(uploaded.every((e) => e.status === 201), 'uploads completed with 201');
    for (const e of uploaded) {
      const i = log.all().indexOf(e);
      const verify = log.all().slice(i + 1).find((x) => x.method === 'HEAD' && x.path === `/v2/docker/built/blobs/${e.query.get('digest')}`);
      t.equal(verify?.status, 200, `verification HEAD of ${e.query.get('digest')?.slice(0, 19)} after upload: 200`);
    }
    t.equal(log.find('PUT', /^\/v2\/docker\/built\/manifests\/v1$/)[0]?.status, 201, 'manifest PUT 201');

    const rmi = await d.docker(['rmi', ref]);
    t.equal(rmi.code, 0, 'docker rmi exits 0', { stderr: rmi.stderr });
    t.equal(await inspect(d, ref), undefined, 'the image is gone locally');

    log.clear();
    const pull = await d.docker(['pull', ref]);
    t.equal(pull.code, 0, 'docker pull exits 0', { stdout: pull.stdout, stderr: pull.stderr, requests: log.text() });
    t.match(pull.stdout, `Digest: ${digest}`, 'pulled the pushed digest');
    t.equal(log.find('HEAD', /^\/v2\/docker\/built\/manifests\/v1$/)[0]?.digest, digest, 'HEAD manifests/v1 answered with the digest');
    t.ok(log.find('GET', new RegExp(`^/v2/docker/built/manifests/${digest}$`)).some((e) => e.status === 200), 'then GET by digest');
    t.ok(log.find('GET', new RegExp(`^/v2/docker/built/blobs/${layerDigest}$`)).some((e) => e.status === 200), 'layer downloaded again');
    const again = await inspect(d, ref);
    t.equal(again?.Id, built?.Id, 'same image id after the round trip');
    t.same(again?.RootFS.Layers, built?.RootFS.Layers, 'same RootFS layers after the round trip');
    t.same(again?.RepoDigests, [`${h}/docker/built@${digest}`], 'repo digest');

    const create = await d.docker(['create', '--network', 'none', '--name', 'roundtrip', ref]);
    t.equal(create.code, 0, 'docker create exits 0', { stderr: create.stderr });
    const out = path.join(dir, 'out.txt');
    const cp = await d.docker(['cp', 'roundtrip:/hello.txt', out]);
    t.equal(cp.code, 0, 'docker cp exits 0', { stderr: cp.stderr });
    t.equal(readFileSync(out, 'utf8'), hello, 'the file content round-trips through the registry');
    await d.docker(['rm', 'roundtrip']);

    // Same image, another repository: dockerd remembers where the layer came from and mounts it.
    const other = `${h}/docker/other:v1`;
    t.equal((await d.docker(['tag', ref, other])).code, 0, 'docker tag exits 0');
    log.clear();
    const push2 = await d.docker(['push', other]);
    t.equal(push2.code, 0, 'docker push to another repository exits 0', { stdout: push2.stdout, stderr: push2.stderr, requests: log.text() });
    t.match(push2.stdout, 'Mounted from docker/built', 'docker reports the layer as mounted', { stdout: push2.stdout });
    t.match(push2.stdout, `v1: digest: ${digest}`, 'same manifest digest');
    const mount = log
      .find('POST', /^\/v2\/docker\/other\/blobs\/uploads\/?$/)
      .find((e) => e.query.get('mount') === layerDigest);
    t.equal(mount?.query.get('from'), 'docker/built', 'POST ?mount=<layer>&from=docker/built');
    t.equal(mount?.status, 201, 'mount answered 201 Created');
    // Docker never mounts the config blob: it uploads that one (POST, PATCH, PUT); the layer must not be uploaded.
    t.same(
      log.find('PUT', /^\/v2\/docker\/other\/blobs\/uploads\//).map((e) => e.query.get('digest')),
      [manifest.config.digest],
      'only the config was uploaded, not the layer',
      { requests: log.text() },
    );
    const served = await fetch(`${reg.url}/v2/docker/other/blobs/${layerDigest}`, { method: 'HEAD' });
    t.equal(served.status, 200, 'the target repository serves the mounted layer');
    t.equal(served.headers.get('content-length'), String(layer.length), 'with its size');
    const otherManifest = await fetch(`${reg.url}/v2/docker/other/manifests/v1`, { headers: { accept: ACCEPT_ALL } });
    t.equal(otherManifest.headers.get('docker-content-digest'), digest, 'docker/other:v1 is the same manifest');
    t.ok(Buffer.from(await otherManifest.arrayBuffer()).equals(manifestBytes), 'byte for byte');
  });
});
