import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { containersEnv, type ContainersEnv, type ToolResult } from '../helpers/containers';
import { layoutBlobs, layoutIndex, makeOciLayout, OCI_MANIFEST, readLayoutBlob } from '../helpers/oci-layout';
import { startRegistry, tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { sha256 } from '../helpers/v2';

// Acceptance: Debian's skopeo (1.9, containers/image 5.23) against the v2 API over plain HTTP
// (real-clients.md section 2). Layouts are written in-process (helpers/oci-layout.ts), so every byte skopeo
// pushes is known: round trips must give back the same blobs and the same manifest bytes.

const DOCKER_MANIFEST = 'application/vnd.docker.distribution.manifest.v2+json';
const DOCKER_CONFIG = 'application/vnd.docker.container.image.v1+json';
const DOCKER_LAYER = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const ACCEPT_ALL = [
  OCI_MANIFEST,
  DOCKER_MANIFEST,
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
].join(', ');

interface Fetched {
  status: number;
  type: string | null;
  digest: string | null;
  body: Buffer;
}

async function get(url: string, accept = ACCEPT_ALL, method = 'GET'): Promise<Fetched> {
  const res = await fetch(url, { method, headers: { accept } });
  const body = Buffer.from(await res.arrayBuffer());
  return { status: res.status, type: res.headers.get('content-type'), digest: res.headers.get('docker-content-digest'), body };
}

/** Tool output for assertion diagnostics. */
const said = (r: ToolResult) => ({ code: r.code, stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000), ms: r.ms });

/** skopeo and assert exit 0 (the output goes into the assertion on failure). */
async function ok(t: Test, env: ContainersEnv, args: string[], what: string): Promise<ToolResult> {
  const r = await env.skopeo(args);
  t.equal(r.code, 0, `${what} (${r.ms} ms)`, said(r));
  return r;
}

/** Blob files of a `dir:` destination (skopeo 1.9 names them by bare hex, plus manifest.json and version). */
function dirBlobs(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => /^[0-9a-f]{64}$/.test(f))
    .map((f) => `sha256:${f}`)
    .sort();
}

t.test('skopeo: OCI layout -> registry (OCI) -> OCI layout is byte-identical', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const reg = await startRegistry(t);
  const env = await containersEnv(t);
  const work = tempDir(t, 'skopeo-oci-');
  const src = path.join(work, 'src');
  const back = path.join(work, 'back');
  const img = makeOciLayout(src, { tag: 'v1', layers: 3, layerBytes: 6000, seed: 11 });
  const ref = `docker://${reg.host}/skopeo/oci:v1`;

  await ok(t, env, ['copy', '--dest-tls-verify=false', `oci:${src}:v1`, ref], 'skopeo copy oci: -> docker://');

  const m = await get(`${reg.url}/v2/skopeo/oci/manifests/v1`);
  t.equal(m.status, 200, 'GET manifest by tag');
  t.equal(m.type, OCI_MANIFEST, 'served as an OCI image manifest');
  t.equal(m.digest, img.manifestDigest, 'Docker-Content-Digest is the layout manifest digest');
  t.ok(m.body.equals(img.manifest), 'the registry holds the exact manifest bytes skopeo read from the layout');
  for (const digest of [...img.layerDigests, img.configDigest]) {
    const b = await get(`${reg.url}/v2/skopeo/oci/blobs/${digest}`);
    t.equal(b.status, 200, `blob ${digest.slice(7, 19)} served`);
    t.ok(b.body.equals(readLayoutBlob(src, digest)), `blob ${digest.slice(7, 19)} bytes identical`);
  }

  await ok(t, env, ['copy', '--src-tls-verify=false', ref, `oci:${back}:v1`], 'skopeo copy docker:// -> oci:');
  t.same(layoutBlobs(back), layoutBlobs(src), 'same blob set (layers, config, manifest)');
  t.same(layoutBlobs(back), img.blobs, 'and it is exactly what the layout was written with');
  for (const digest of img.blobs) {
    t.ok(readLayoutBlob(back, digest).equals(readLayoutBlob(src, digest)), `blob ${digest.slice(7, 19)} byte-identical after the round trip`);
  }
  const idx = layoutIndex(back);
  t.equal(idx.length, 1, 'one manifest in the pulled index.json');
  t.equal(idx[0]?.digest, img.manifestDigest, 'index.json points at the original manifest digest');
  t.equal(idx[0]?.mediaType, OCI_MANIFEST, 'as an OCI manifest');
  t.equal(idx[0]?.annotations?.['org.opencontainers.image.ref.name'], 'v1', 'tagged v1');
  t.ok(readLayoutBlob(back, img.manifestDigest).equals(img.manifest), 'manifest bytes identical');
});

t.test('skopeo: --format v2s2 push (Docker schema2 media types) and back to dir:', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const reg = await startRegistry(t);
  const env = await containersEnv(t);
  const work = tempDir(t, 'skopeo-v2s2-');
  const src = path.join(work, 'src');
  const back = path.join(work, 'back');
  const img = makeOciLayout(src, { tag: 'v1', layers: 2, seed: 22 });
  const ref = `docker://${reg.host}/skopeo/docker:v2s2`;

  await ok(t, env, ['copy', '--format', 'v2s2', '--dest-tls-verify=false', `oci:${src}:v1`, ref], 'skopeo copy --format v2s2');

  const m = await get(`${reg.url}/v2/skopeo/docker/manifests/v2s2`);
  t.equal(m.status, 200, 'GET manifest by tag');
  t.equal(m.type, DOCKER_MANIFEST, 'served with the Docker schema2 content type');
  t.equal(m.digest, sha256(m.body), 'Docker-Content-Digest is the digest of the served bytes');
  const doc = JSON.parse(m.body.toString('utf8'));
  t.equal(doc.schemaVersion, 2, 'schemaVersion 2');
  t.equal(doc.mediaType, DOCKER_MANIFEST, 'manifest mediaType is Docker schema2');
  t.equal(doc.config.mediaType, DOCKER_CONFIG, 'config media type converted to Docker');
  t.equal(doc.config.digest, img.configDigest, 'config blob unchanged by the conversion');
  t.same(
    doc.layers.map((l: { mediaType: string }) => l.mediaType),
    img.layerDigests.map(() => DOCKER_LAYER),
    'layer media types converted to Docker',
  );
  t.same(
    doc.layers.map((l: { digest: string }) => l.digest),
    img.layerDigests,
    'layer blobs unchanged by the conversion',
  );

  const head = await get(`${reg.url}/v2/skopeo/docker/manifests/v2s2`, ACCEPT_ALL, 'HEAD');
  t.equal(head.status, 200, 'HEAD manifest');
  t.equal(head.digest, m.digest, 'HEAD gives the same Docker-Content-Digest');
  t.equal(head.type, DOCKER_MANIFEST, 'HEAD gives the same content type');

  const raw = await ok(t, env, ['inspect', '--tls-verify=false', '--raw', ref], 'skopeo inspect --raw');
  t.ok(raw.out.equals(m.body), 'inspect --raw prints exactly the pushed manifest bytes');

  await ok(t, env, ['copy', '--src-tls-verify=false', ref, `dir:${back}`], 'skopeo copy docker:// -> dir:');
  t.ok(readFileSync(path.join(back, 'manifest.json')).equals(m.body), 'dir: manifest.json byte-identical to the pushed manifest');
  t.same(dirBlobs(back), [...img.layerDigests, img.configDigest].sort(), 'dir: holds exactly the layers and the config');
  for (const digest of [...img.layerDigests, img.configDigest]) {
    const file = readFileSync(path.join(back, digest.slice('sha256:'.length)));
    t.ok(file.equals(readLayoutBlob(src, digest)), `blob ${digest.slice(7, 19)} byte-identical`);
  }
});

t.test('skopeo: inspect, inspect --raw/--config, list-tags, delete', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const reg = await startRegistry(t);
  const env = await containersEnv(t);
  const work = tempDir(t, 'skopeo-insp-');
  const a = makeOciLayout(path.join(work, 'a'), { tag: 'a', layers: 2, seed: 31 });
  const b = makeOciLayout(path.join(work, 'b'), { tag: 'b', layers: 1, seed: 32, arch: 'arm64' });
  const repo = `${reg.host}/skopeo/tags`;
  await ok(t, env, ['copy', '--dest-tls-verify=false', `oci:${path.join(work, 'a')}:a`, `docker://${repo}:a1`], 'push a as a1');
  await ok(t, env, ['copy', '--dest-tls-verify=false', `oci:${path.join(work, 'a')}:a`, `docker://${repo}:a2`], 'push a again as a2');
  await ok(t, env, ['copy', '--dest-tls-verify=false', `oci:${path.join(work, 'b')}:b`, `docker://${repo}:b1`], 'push b as b1');

  const insp = await ok(t, env, ['inspect', '--tls-verify=false', `docker://${repo}:a1`], 'skopeo inspect');
  const info = JSON.parse(insp.stdout);
  t.equal(info.Name, repo, 'Name');
  t.equal(info.Digest, a.manifestDigest, 'Digest is the pushed manifest digest');
  t.same(info.Layers, a.layerDigests, 'Layers in manifest order');
  t.equal(info.Architecture, 'amd64', 'Architecture from the config');
  t.equal(info.Os, 'linux', 'Os from the config');
  t.same([...info.RepoTags].sort(), ['a1', 'a2', 'b1'], 'RepoTags lists every tag (from tags/list)');

  const inspB = await ok(t, env, ['inspect', '--tls-verify=false', '--no-tags', `docker://${repo}:b1`], 'skopeo inspect --no-tags b1');
  t.equal(JSON.parse(inspB.stdout).Architecture, 'arm64', 'b1 is the arm64 image');

  const raw = await ok(t, env, ['inspect', '--tls-verify=false', '--raw', `docker://${repo}:a1`], 'skopeo inspect --raw');
  t.ok(raw.out.equals(a.manifest), 'inspect --raw equals the pushed manifest bytes');
  const byDigest = await ok(t, env, ['inspect', '--tls-verify=false', '--raw', `docker://${repo}@${a.manifestDigest}`], 'inspect --raw by digest');
  t.ok(byDigest.out.equals(a.manifest), 'by digest too');

  const cfgRaw = await ok(t, env, ['inspect', '--tls-verify=false', '--config', '--raw', `docker://${repo}:a1`], 'skopeo inspect --config --raw');
  const configBytes = readLayoutBlob(path.join(work, 'a'), a.configDigest);
  t.ok(cfgRaw.out.equals(configBytes), 'inspect --config --raw equals the config blob bytes');
  const cfg = await ok(t, env, ['inspect', '--tls-verify=false', '--config', `docker://${repo}:a1`], 'skopeo inspect --config');
  const parsed = JSON.parse(cfg.stdout);
  t.same(parsed.rootfs, { type: 'layers', diff_ids: a.diffIds }, 'config rootfs.diff_ids');
  t.same(parsed.config.Cmd, ['/layer0.txt'], 'config Cmd');

  const tags = await ok(t, env, ['list-tags', '--tls-verify=false', `docker://${repo}`], 'skopeo list-tags');
  const listed = JSON.parse(tags.stdout);
  t.equal(listed.Repository, repo, 'list-tags Repository');
  t.same([...listed.Tags].sort(), ['a1', 'a2', 'b1'], 'list-tags shows every tag');

  // skopeo delete resolves the tag and sends DELETE /v2/<name>/manifests/<digest>.
  await ok(t, env, ['delete', '--tls-verify=false', `docker://${repo}:b1`], 'skopeo delete b1');
  const gone = await env.skopeo(['inspect', '--tls-verify=false', '--no-tags', `docker://${repo}:b1`]);
  t.not(gone.code, 0, 'inspect of the deleted tag fails', said(gone));
  t.match(gone.stderr, /manifest unknown|not found/i, 'with manifest unknown');
  t.equal((await get(`${reg.url}/v2/skopeo/tags/manifests/${b.manifestDigest}`)).status, 404, 'the manifest is gone by digest');
  const after = JSON.parse((await ok(t, env, ['list-tags', '--tls-verify=false', `docker://${repo}`], 'list-tags after delete')).stdout);
  t.same([...after.Tags].sort(), ['a1', 'a2'], 'list-tags no longer shows b1');
  const stillA = await ok(t, env, ['inspect', '--tls-verify=false', '--raw', `docker://${repo}:a2`], 'a2 still inspectable');
  t.ok(stillA.out.equals(a.manifest), 'a2 untouched');

  // Deleting a1 deletes manifest a by digest, so every tag on it goes (DELETE by digest, as the API defines it).
  await ok(t, env, ['delete', '--tls-verify=false', `docker://${repo}:a1`], 'skopeo delete a1');
  for (const tag of ['a1', 'a2']) {
    const r = await env.skopeo(['inspect', '--tls-verify=false', '--no-tags', `docker://${repo}:${tag}`]);
    t.not(r.code, 0, `inspect ${tag} fails after its manifest was deleted`, said(r));
  }
  const tagsGone = await get(`${reg.url}/v2/skopeo/tags/tags/list`);
  if (tagsGone.status === 200) t.same(JSON.parse(tagsGone.body.toString()).tags ?? [], [], 'no tags left');
  else t.equal(tagsGone.status, 404, 'or the repository is unknown');
});

t.test('skopeo: copy between two repositories of the registry (cross-repository mount)', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const reg = await startRegistry(t);
  const env = await containersEnv(t);
  const work = tempDir(t, 'skopeo-mount-');
  const img = makeOciLayout(path.join(work, 'src'), { tag: 'v1', layers: 3, seed: 41 });
  const from = `${reg.host}/team-a/app`;
  const to = `${reg.host}/team-b/app-copy`;

  // The first push records in this test's blob-info cache that the layers live in team-a/app.
  await ok(t, env, ['copy', '--dest-tls-verify=false', `oci:${path.join(work, 'src')}:v1`, `docker://${from}:v1`], 'push to team-a/app');
  const copy = await ok(
    t,
    env,
    ['--debug', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${from}:v1`, `docker://${to}:v1`],
    'skopeo copy docker://team-a/app -> docker://team-b/app-copy',
  );

  if (env.isolation === 'mount-namespace') {
    // skopeo asks POST /v2/team-b/app-copy/blobs/uploads/?from=team-a%2Fapp&mount=<digest> for each layer it
    // knows is in team-a/app; the registry must answer 201, else skopeo falls back to uploading (PATCH + PUT ?digest=).
    for (const digest of img.layerDigests) {
      const enc = encodeURIComponent(digest);
      t.match(copy.stderr, new RegExp(`POST \\S+/v2/team-b/app-copy/blobs/uploads/\\?from=team-a%2Fapp&mount=${enc}`), `mount requested for ${digest.slice(7, 19)}`);
      t.notMatch(copy.stderr, new RegExp(`PUT \\S+/v2/team-b/app-copy/blobs/uploads/\\S+\\?digest=${enc}`), `layer ${digest.slice(7, 19)} not uploaded`);
    }
  } else {
    t.comment('blob-info cache not private: mount path not asserted');
  }

  const src = await get(`${reg.url}/v2/team-a/app/manifests/v1`);
  const dst = await get(`${reg.url}/v2/team-b/app-copy/manifests/v1`);
  t.equal(dst.status, 200, 'copied manifest served');
  t.ok(dst.body.equals(src.body), 'manifest bytes identical in both repositories');
  t.equal(dst.digest, img.manifestDigest, 'same digest');
  for (const digest of [...img.layerDigests, img.configDigest]) {
    const b = await get(`${reg.url}/v2/team-b/app-copy/blobs/${digest}`);
    t.equal(b.status, 200, `blob ${digest.slice(7, 19)} readable in the target repository`);
    t.equal(sha256(b.body), digest, 'with the right content');
  }
  // The mount is a link, not a move: the source repository keeps its blobs and manifest.
  const again = await ok(t, env, ['inspect', '--tls-verify=false', '--raw', `docker://${from}:v1`], 'source still inspectable');
  t.ok(again.out.equals(img.manifest), 'source manifest unchanged');
  // A blob mounted into team-b is still not readable from an unrelated repository.
  t.equal((await get(`${reg.url}/v2/team-c/other/blobs/${img.layerDigests[0]}`)).status, 404, 'no leak into an unrelated repository');

  // And back out of the copy into a layout: identical to the original.
  const back = path.join(work, 'back');
  await ok(t, env, ['copy', '--src-tls-verify=false', `docker://${to}:v1`, `oci:${back}:v1`], 'pull the copy to oci:');
  t.same(layoutBlobs(back), img.blobs, 'same blob set as the original layout');
});
