import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { containersEnv, type ContainersEnv, type ToolResult } from '../helpers/containers';
import { makeOciLayout, OCI_INDEX, OCI_MANIFEST } from '../helpers/oci-layout';
import { startRegistry, tempDir, type TestRegistry } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { buildImage, pushImage, sha256 } from '../helpers/v2';

// Acceptance: Debian's podman 4.3 against the v2 API over plain HTTP (real-clients.md section 3), with its
// storage (--root/--runroot, overlay unless unavailable) and every config file in a temp dir (helpers/containers.ts).

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_LIST = 'application/vnd.docker.distribution.manifest.list.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const ACCEPT_INDEX = `${OCI_INDEX}, ${DOCKER_LIST}`;
const ACCEPT_IMAGE = `${OCI_MANIFEST}, ${DOCKER_MANIFEST}`;

interface Fetched {
  status: number;
  type: string | null;
  digest: string | null;
  body: Buffer;
}

async function get(url: string, accept: string, method = 'GET'): Promise<Fetched> {
  const res = await fetch(url, { method, headers: { accept } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, type: res.headers.get('content-type'), digest: res.headers.get('docker-content-digest'), body };
}

const said = (r: ToolResult) => ({ code: r.code, stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000), ms: r.ms });

async function ok(t: Test, run: Promise<ToolResult>, what: string): Promise<ToolResult> {
  const r = await run;
  t.equal(r.code, 0, `${what} (${r.ms} ms)`, said(r));
  return r;
}

interface ImageInspect {
  Id: string;
  Digest: string;
  RepoDigests: string[];
  RepoTags: string[];
  Architecture: string;
}

async function inspect(t: Test, env: ContainersEnv, ref: string): Promise<ImageInspect> {
  const r = await ok(t, env.podman(['image', 'inspect', ref]), `podman image inspect ${ref}`);
  return (JSON.parse(r.stdout) as ImageInspect[])[0]!;
}

const readDigestFile = (file: string) => readFileSync(file, 'utf8').trim();

/** Every blob of an image manifest is served by the repository with the right bytes; returns the parsed manifest. */
async function checkImage(t: Test, reg: TestRegistry, repo: string, digest: string, mediaType: string) {
  const m = await get(`${reg.url}/v2/${repo}/manifests/${digest}`, ACCEPT_IMAGE);
  t.equal(m.status, 200, `child ${digest.slice(7, 19)} fetchable by digest`);
  t.equal(m.type, mediaType, `child ${digest.slice(7, 19)} served as ${mediaType}`);
  t.equal(sha256(m.body), digest, `child ${digest.slice(7, 19)} bytes match its digest`);
  const doc = JSON.parse(m.body.toString('utf8'));
  for (const d of [doc.config, ...doc.layers] as { digest: string; size: number }[]) {
    const b = await get(`${reg.url}/v2/${repo}/blobs/${d.digest}`, '*/*');
    t.equal(b.status, 200, `blob ${d.digest.slice(7, 19)} of child ${digest.slice(7, 19)} served`);
    t.ok(sha256(b.body) === d.digest && b.body.length === d.size, `blob ${d.digest.slice(7, 19)} content and size`);
  }
  return { doc, bytes: m.body };
}

t.test('podman: pull, tag, push, pull back; --format v2s2', async (t) => {
  if (!requireTools(t, ['podman', 'skopeo'])) return;
  const reg = await startRegistry(t);
  const env = await containersEnv(t);
  const work = tempDir(t, 'podman-');
  t.comment(`storage driver ${env.storageDriver}, blob-info cache isolation: ${env.isolation}`);

  // The base image: an OCI layout written here, pushed by skopeo.
  const img = makeOciLayout(path.join(work, 'src'), { tag: 'v1', layers: 2, layerBytes: 8000, seed: 51 });
  await ok(t, env.skopeo(['copy', '--dest-tls-verify=false', `oci:${path.join(work, 'src')}:v1`, `docker://${reg.host}/base/img:v1`]), 'skopeo push base/img:v1');

  const base = `${reg.host}/base/img:v1`;
  await ok(t, env.podman(['pull', '--tls-verify=false', base]), 'podman pull');
  const pulled = await inspect(t, env, base);
  t.equal(pulled.Digest, img.manifestDigest, 'podman records the manifest digest the registry served');
  t.equal(`sha256:${pulled.Id}`, img.configDigest, 'image ID is the config digest');
  t.ok(pulled.RepoDigests.includes(`${reg.host}/base/img@${img.manifestDigest}`), 'RepoDigests names the registry digest', { got: pulled.RepoDigests });
  t.equal(pulled.Architecture, 'amd64', 'architecture from the config');

  const pushedRef = `${reg.host}/podman/pushed:v1`;
  await ok(t, env.podman(['tag', base, pushedRef]), 'podman tag');
  const digestFile = path.join(work, 'pushed.digest');
  await ok(t, env.podman(['push', '--tls-verify=false', '--digestfile', digestFile, pushedRef]), 'podman push');
  const pushedDigest = readDigestFile(digestFile);
  const m = await get(`${reg.url}/v2/podman/pushed/manifests/v1`, ACCEPT_IMAGE);
  t.equal(m.status, 200, 'pushed manifest served by tag');
  t.equal(m.digest, pushedDigest, 'Docker-Content-Digest equals the digest podman computed');
  t.equal(sha256(m.body), pushedDigest, 'and is the digest of the served bytes');
  t.equal(m.type, OCI_MANIFEST, 'an OCI image stays OCI');
  const doc = JSON.parse(m.body.toString('utf8'));
  t.equal(doc.config.digest, img.configDigest, 'same config blob');
  // Whatever compression podman chose, the layers must unpack to the original diff ids.
  for (const [i, l] of (doc.layers as { digest: string }[]).entries()) {
    const b = await get(`${reg.url}/v2/podman/pushed/blobs/${l.digest}`, '*/*');
    t.equal(b.status, 200, `layer ${i} served`);
    t.equal(sha256(gunzipSync(b.body)), img.diffIds[i], `layer ${i} unpacks to the original tar`);
  }
  if (env.isolation === 'mount-namespace') {
    // podman reuses the compressed layers it pulled (its blob-info cache knows them), so nothing changes.
    t.ok(m.body.equals(img.manifest), 'podman pushed the original manifest bytes unchanged');
  }

  const raw = await ok(t, env.skopeo(['inspect', '--tls-verify=false', '--raw', `docker://${pushedRef}`]), 'skopeo inspect --raw of the podman push');
  t.ok(raw.out.equals(m.body), 'skopeo sees the same manifest bytes');

  // Push again converting to Docker schema2.
  const v2s2Ref = `${reg.host}/podman/pushed:v2s2`;
  const v2s2File = path.join(work, 'v2s2.digest');
  await ok(t, env.podman(['push', '--tls-verify=false', '--format', 'v2s2', '--digestfile', v2s2File, base, `docker://${v2s2Ref}`]), 'podman push --format v2s2');
  const d = await get(`${reg.url}/v2/podman/pushed/manifests/v2s2`, ACCEPT_IMAGE);
  t.equal(d.status, 200, 'v2s2 manifest served');
  t.equal(d.type, DOCKER_MANIFEST, 'with the Docker schema2 content type');
  t.equal(d.digest, readDigestFile(v2s2File), 'digest as podman computed it');
  const ddoc = JSON.parse(d.body.toString('utf8'));
  t.equal(ddoc.mediaType, DOCKER_MANIFEST, 'body mediaType Docker schema2');
  t.equal(ddoc.config.mediaType, DOCKER_CONFIG, 'Docker config media type');
  t.equal(ddoc.config.digest, img.configDigest, 'config blob unchanged');
  t.same(
    (ddoc.layers as { mediaType: string }[]).map((l) => l.mediaType),
    img.layerDigests.map(() => DOCKER_LAYER),
    'Docker layer media types',
  );
  for (const l of ddoc.layers as { digest: string }[]) {
    t.equal((await get(`${reg.url}/v2/podman/pushed/blobs/${l.digest}`, '*/*', 'HEAD')).status, 200, `layer ${l.digest.slice(7, 19)} present`);
  }

  // Drop every local image, then pull both pushes back.
  await ok(t, env.podman(['rmi', '--all', '--force']), 'podman rmi --all');
  const none = await ok(t, env.podman(['images', '--quiet']), 'podman images');
  t.equal(none.stdout.trim(), '', 'local storage is empty');

  await ok(t, env.podman(['pull', '--tls-verify=false', pushedRef]), 'podman pull podman/pushed:v1 back');
  const back = await inspect(t, env, pushedRef);
  t.equal(back.Digest, pushedDigest, 'pulled back with the pushed digest');
  t.equal(`sha256:${back.Id}`, img.configDigest, 'same image ID');

  await ok(t, env.podman(['pull', '--tls-verify=false', v2s2Ref]), 'podman pull podman/pushed:v2s2 back');
  const backV2 = await inspect(t, env, v2s2Ref);
  // Same config, so the same local image: podman adds the v2s2 manifest digest to it (Digest stays the first one).
  t.equal(`sha256:${backV2.Id}`, img.configDigest, 'same image ID after the format conversion');
  t.ok(backV2.RepoDigests.includes(`${reg.host}/podman/pushed@${d.digest}`), 'v2s2 pulled back with its digest', { got: backV2.RepoDigests });
  t.ok(backV2.RepoTags.includes(v2s2Ref), 'and tagged v2s2', { got: backV2.RepoTags });
  const rawV2 = await ok(t, env.skopeo(['inspect', '--tls-verify=false', '--raw', `docker://${v2s2Ref}`]), 'skopeo inspect --raw v2s2');
  t.ok(rawV2.out.equals(d.body), 'skopeo sees the same v2s2 bytes');
});

t.test('podman: multi-arch index with manifest create/add/push --all', async (t) => {
  if (!requireTools(t, ['podman', 'skopeo'])) return;
  const reg = await startRegistry(t);
  const env = await containersEnv(t);
  const work = tempDir(t, 'podman-multi-');

  // amd64 from a layout via skopeo, arm64 straight over HTTP.
  const amd = makeOciLayout(path.join(work, 'amd'), { tag: 'v1', layers: 2, seed: 61 });
  await ok(t, env.skopeo(['copy', '--dest-tls-verify=false', `oci:${path.join(work, 'amd')}:v1`, `docker://${reg.host}/base/amd64:v1`]), 'skopeo push amd64 image');
  const armDigest = await pushImage(reg.url, 'base/arm64', 'v1', buildImage({ layers: 1, arch: 'arm64' }));

  const list = 'localhost/e2e-multi:v1';
  await ok(t, env.podman(['manifest', 'create', list]), 'podman manifest create');
  await ok(t, env.podman(['manifest', 'add', '--tls-verify=false', list, `docker://${reg.host}/base/amd64:v1`]), 'manifest add amd64');
  await ok(t, env.podman(['manifest', 'add', '--tls-verify=false', '--arch', 'arm64', list, `docker://${reg.host}/base/arm64:v1`]), 'manifest add --arch arm64');

  for (const variant of [
    { tag: 'oci', args: [] as string[], indexType: OCI_INDEX, childType: OCI_MANIFEST },
    { tag: 'docker', args: ['--format', 'v2s2'], indexType: DOCKER_LIST, childType: DOCKER_MANIFEST },
  ]) {
    const digestFile = path.join(work, `${variant.tag}.digest`);
    await ok(
      t,
      env.podman(['manifest', 'push', '--all', '--tls-verify=false', ...variant.args, '--digestfile', digestFile, list, `docker://${reg.host}/podman/multi:${variant.tag}`]),
      `podman manifest push --all ${variant.args.join(' ')}`.trim(),
    );
    const idx = await get(`${reg.url}/v2/podman/multi/manifests/${variant.tag}`, ACCEPT_INDEX);
    t.equal(idx.status, 200, `${variant.tag}: index served by tag`);
    t.equal(idx.type, variant.indexType, `${variant.tag}: content type ${variant.indexType}`);
    t.equal(idx.digest, readDigestFile(digestFile), `${variant.tag}: Docker-Content-Digest equals podman's digest`);
    t.equal(sha256(idx.body), idx.digest, `${variant.tag}: digest of the served bytes`);
    const head = await get(`${reg.url}/v2/podman/multi/manifests/${variant.tag}`, ACCEPT_INDEX, 'HEAD');
    t.equal(head.status, 200, `${variant.tag}: HEAD index`);
    t.equal(head.digest, idx.digest, `${variant.tag}: HEAD digest`);

    const doc = JSON.parse(idx.body.toString('utf8'));
    t.equal(doc.mediaType, variant.indexType, `${variant.tag}: body mediaType`);
    const children = doc.manifests as { mediaType: string; digest: string; size: number; platform: { architecture: string; os: string } }[];
    t.equal(children.length, 2, `${variant.tag}: two children`);
    t.same(children.map((c) => c.platform.architecture).sort(), ['amd64', 'arm64'], `${variant.tag}: amd64 and arm64`);
    for (const c of children) {
      t.equal(c.mediaType, variant.childType, `${variant.tag}: ${c.platform.architecture} child is ${variant.childType}`);
      const { bytes, doc: child } = await checkImage(t, reg, 'podman/multi', c.digest, c.mediaType);
      t.equal(bytes.length, c.size, `${variant.tag}: ${c.platform.architecture} size matches the descriptor`);
      const cfg = await get(`${reg.url}/v2/podman/multi/blobs/${child.config.digest}`, '*/*');
      t.equal(JSON.parse(cfg.body.toString('utf8')).architecture, c.platform.architecture, `${variant.tag}: config agrees with the platform`);
    }
    if (variant.tag === 'oci') {
      // No conversion asked: the children are the very manifests that were pushed.
      t.equal(children.find((c) => c.platform.architecture === 'amd64')?.digest, amd.manifestDigest, 'amd64 child is the pushed amd64 manifest');
      t.equal(children.find((c) => c.platform.architecture === 'arm64')?.digest, armDigest, 'arm64 child is the pushed arm64 manifest');
    }
    const raw = await ok(t, env.skopeo(['inspect', '--tls-verify=false', '--raw', `docker://${reg.host}/podman/multi:${variant.tag}`]), `${variant.tag}: skopeo inspect --raw`);
    t.ok(raw.out.equals(idx.body), `${variant.tag}: skopeo sees the same index bytes`);
  }

  // Another client copies the whole index (children first, then the index) to a second repository.
  await ok(
    t,
    env.skopeo(['copy', '--all', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${reg.host}/podman/multi:oci`, `docker://${reg.host}/skopeo/multi-copy:v1`]),
    'skopeo copy --all of the index to another repository',
  );
  const orig = await get(`${reg.url}/v2/podman/multi/manifests/oci`, ACCEPT_INDEX);
  const copied = await get(`${reg.url}/v2/skopeo/multi-copy/manifests/v1`, ACCEPT_INDEX);
  t.equal(copied.status, 200, 'copied index served');
  t.ok(copied.body.equals(orig.body), 'copied index byte-identical');
  for (const c of JSON.parse(copied.body.toString('utf8')).manifests as { digest: string; mediaType: string }[]) {
    await checkImage(t, reg, 'skopeo/multi-copy', c.digest, c.mediaType);
  }

  // A client resolves the index to the arm64 child.
  const multi = `${reg.host}/podman/multi:oci`;
  await ok(t, env.podman(['pull', '--tls-verify=false', '--arch', 'arm64', multi]), 'podman pull --arch arm64 of the index');
  const arm = await inspect(t, env, multi);
  t.equal(arm.Architecture, 'arm64', 'the arm64 image was selected');
  t.ok(arm.RepoDigests.includes(`${reg.host}/podman/multi@${armDigest}`), 'its child digest is recorded', { got: arm.RepoDigests });
});
