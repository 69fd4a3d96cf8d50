import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { authConfig } from '../helpers/auth';
import { containersEnv, type ContainersEnv, type ToolResult } from '../helpers/containers';
import { startDockerd } from '../helpers/dockerd';
import { layoutBlobs, makeOciLayout, OCI_INDEX, OCI_MANIFEST, type OciLayoutResult } from '../helpers/oci-layout';
import { startDockerRegistry, startForwarder } from '../helpers/proxy';
import { startRegistry, tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { sha256 } from '../helpers/v2';

// Acceptance for the pull-through cache (docs/proxy.md) with real peers: Debian's docker-registry
// (distribution 2.8) with htpasswd Basic auth as the upstream, and this registry in token mode as a Bearer
// upstream; images pushed there by skopeo from OCI layouts written here; pulled through the cache by skopeo
// and by docker (a private dockerd). A counting forwarder between cache and upstream proves what went upstream.

const said = (r: ToolResult) => ({ code: r.code, stdout: r.stdout.slice(-2000), stderr: r.stderr.slice(-2000), ms: r.ms });

async function ok(t: Test, p: Promise<ToolResult>, what: string): Promise<ToolResult> {
  const r = await p;
  t.equal(r.code, 0, `${what} (${r.ms} ms)`, said(r));
  return r;
}

/** skopeo copy docker://ref -> a fresh OCI layout; returns its directory. */
async function pullToLayout(t: Test, env: ContainersEnv, ref: string, tag: string, extra: string[] = []): Promise<string> {
  const out = path.join(tempDir(t, 'proxy-pull-'), 'layout');
  await ok(t, env.skopeo(['copy', '--src-tls-verify=false', ...extra, `docker://${ref}`, `oci:${out}:${tag}`]), `skopeo copy ${ref} -> oci:`);
  return out;
}

/** An OCI layout whose tag names a two-platform index (linux/amd64 and linux/arm64 images). */
function makeMultiLayout(t: Test, tag: string, seed: number): { dir: string; amd64: OciLayoutResult; arm64: OciLayoutResult; indexDigest: string; blobs: string[] } {
  const work = tempDir(t, 'proxy-multi-');
  const amd64 = makeOciLayout(path.join(work, 'amd64'), { tag, layers: 2, layerBytes: 50_000, seed, arch: 'amd64' });
  const arm64 = makeOciLayout(path.join(work, 'arm64'), { tag, layers: 2, layerBytes: 50_000, seed: seed + 1, arch: 'arm64' });
  const dir = path.join(work, 'multi');
  makeOciLayout(dir, { tag: 'placeholder', layers: 0, seed }); // the layout skeleton; its blobs are left out below
  const blobDir = path.join(dir, 'blobs', 'sha256');
  for (const f of readdirSync(blobDir)) rmSync(path.join(blobDir, f));
  for (const sub of ['amd64', 'arm64']) {
    for (const f of readdirSync(path.join(work, sub, 'blobs', 'sha256'))) copyFileSync(path.join(work, sub, 'blobs', 'sha256', f), path.join(blobDir, f));
  }
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: [
        { mediaType: OCI_MANIFEST, digest: amd64.manifestDigest, size: amd64.manifest.length, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: OCI_MANIFEST, digest: arm64.manifestDigest, size: arm64.manifest.length, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    }),
  );
  const indexDigest = sha256(index);
  writeFileSync(path.join(blobDir, indexDigest.slice(7)), index);
  writeFileSync(
    path.join(dir, 'index.json'),
    JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: [{ mediaType: OCI_INDEX, digest: indexDigest, size: index.length, annotations: { 'org.opencontainers.image.ref.name': tag } }] }),
  );
  return { dir, amd64, arm64, indexDigest, blobs: [...amd64.blobs, ...arm64.blobs, indexDigest].sort() };
}

function htpasswdFile(t: Test, user: string, password: string): string {
  const file = path.join(tempDir(t, 'proxy-htpasswd-'), 'htpasswd');
  execFileSync('htpasswd', ['-Bbc', file, user, password], { stdio: 'ignore' });
  return file;
}

function passwordFile(t: Test, password: string): string {
  const file = path.join(tempDir(t, 'proxy-secret-'), 'password');
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  return file;
}

t.test('docker-registry (htpasswd) upstream: skopeo and docker pull through the cache byte-identical; second pulls fetch no blob', async (t) => {
  if (!requireTools(t, ['docker-registry', 'skopeo', 'htpasswd', 'dockerd'])) return;
  const upstream = await startDockerRegistry(t, { htpasswd: htpasswdFile(t, 'mirror', 's3cret') });
  const fw = await startForwarder(t, upstream.url);
  const cache = await startRegistry(t, {
    proxy: { upstreams: [{ prefix: 'hub/', url: fw.url, username: 'mirror', passwordFile: passwordFile(t, 's3cret'), tagTtl: 0 }] as never },
  });
  const env = await containersEnv(t);
  const src = path.join(tempDir(t, 'proxy-src-'), 'layout');
  const img = makeOciLayout(src, { tag: 'v1', layers: 3, layerBytes: 200_000, seed: 31 });
  await ok(t, env.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'mirror:s3cret', `oci:${src}:v1`, `docker://${upstream.host}/lib/app:v1`]), 'skopeo push to docker-registry');

  const anonymous = await fetch(`${upstream.url}/v2/lib/app/manifests/v1`);
  t.equal(anonymous.status, 401, 'the upstream really requires Basic auth');

  const first = await pullToLayout(t, env, `${cache.host}/hub/lib/app:v1`, 'v1');
  t.same(layoutBlobs(first), img.blobs, 'skopeo through the cache: the exact blobs and manifest pushed upstream');
  const blobGets = fw.count('GET', /\/blobs\/sha256:/);
  t.equal(blobGets, 4, 'each blob (3 layers, config) fetched upstream once');

  const second = await pullToLayout(t, env, `${cache.host}/hub/lib/app:v1`, 'v1');
  t.same(layoutBlobs(second), img.blobs, 'second skopeo pull identical');
  t.equal(fw.count('GET', /\/blobs\/sha256:/), blobGets, 'second pull: no upstream blob request');

  const d = await startDockerd(t);
  const ref = `${cache.host}/hub/lib/app:v1`;
  const pull = await d.docker(['pull', ref]);
  t.equal(pull.code, 0, 'docker pull through the cache', pull);
  const inspect = await d.docker(['image', 'inspect', '--format', '{{.Id}} {{json .RepoDigests}}', ref]);
  t.equal(inspect.stdout.split(' ')[0], img.configDigest, 'docker: the image id is the config digest pushed upstream');
  t.match(inspect.stdout, img.manifestDigest, 'docker: the repo digest is the manifest digest pushed upstream');
  t.equal(fw.count('GET', /\/blobs\/sha256:/), blobGets, 'docker pull of cached content: no upstream blob request');

  // A second image only docker pulls: its blobs come through on docker's own first pull.
  const src2 = path.join(tempDir(t, 'proxy-src2-'), 'layout');
  const img2 = makeOciLayout(src2, { tag: 'v2', layers: 2, layerBytes: 100_000, seed: 32 });
  await ok(t, env.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'mirror:s3cret', `oci:${src2}:v2`, `docker://${upstream.host}/lib/app:v2`]), 'skopeo push v2');
  const pull2 = await d.docker(['pull', `${cache.host}/hub/lib/app:v2`]);
  t.equal(pull2.code, 0, 'docker pull of an uncached image', pull2);
  const inspect2 = await d.docker(['image', 'inspect', '--format', '{{.Id}}', `${cache.host}/hub/lib/app:v2`]);
  t.equal(inspect2.stdout.trim(), img2.configDigest, 'docker: its image id is the config digest');
  const back = await pullToLayout(t, env, `${cache.host}/hub/lib/app:v2`, 'v2');
  t.same(layoutBlobs(back), img2.blobs, 'what docker pulled is in the cache, byte-identical');

  // Pushes into the proxied namespace are refused (skopeo first asks for the blobs, which the upstream lacks).
  const push = await env.skopeo(['copy', '--dest-tls-verify=false', `oci:${src}:v1`, `docker://${cache.host}/hub/lib/mine:v1`]);
  t.not(push.code, 0, 'skopeo push to the prefix fails');
  t.match(push.stderr, /denied|read-only/i, 'DENIED: proxy cache is read-only', said(push));

  // The upstream stops: cached tags still pull (past their TTL, revalidation fails) and a miss is a 503.
  await upstream.stop();
  const stale = await pullToLayout(t, env, `${cache.host}/hub/lib/app:v1`, 'v1');
  t.same(layoutBlobs(stale), img.blobs, 'upstream stopped: the cached image still pulls');
  const warned = await fetch(`${cache.url}/v2/hub/lib/app/manifests/v1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
  t.equal(warned.status, 200, 'the cached tag, past its TTL (0)');
  t.match(warned.headers.get('warning'), /^110 - "stale: /, 'with a Warning header');
  const miss = await fetch(`${cache.url}/v2/hub/lib/other/manifests/v1`);
  t.equal(miss.status, 503, 'upstream stopped: an uncached image answers 503');
  const body = (await miss.json()) as { errors: { code: string; message: string }[] };
  t.equal(body.errors[0]!.code, 'UNAVAILABLE');
  t.match(body.errors[0]!.message, fw.url, 'naming the upstream');
  const inspectMiss = await env.skopeo(['inspect', '--tls-verify=false', '--no-tags', `docker://${cache.host}/hub/lib/other:v1`]);
  t.not(inspectMiss.code, 0, 'skopeo on the uncached image fails');
  t.match(inspectMiss.stderr, /503|unavailable/i, 'with the 503', said(inspectMiss));

});

t.test('multi-platform images through the cache: skopeo --all, docker and podman pull what they need', async (t) => {
  if (!requireTools(t, ['docker-registry', 'skopeo', 'podman', 'dockerd'])) return;
  const upstream = await startDockerRegistry(t);
  const fw = await startForwarder(t, upstream.url);
  const cache = await startRegistry(t, { proxy: { upstreams: [{ prefix: 'hub/', url: fw.url }] as never } });
  const env = await containersEnv(t);
  const multi = makeMultiLayout(t, 'v1', 71);
  for (const repo of ['lib/multi', 'lib/multi-docker', 'lib/multi-podman']) {
    await ok(t, env.skopeo(['copy', '--all', '--dest-tls-verify=false', `oci:${multi.dir}:v1`, `docker://${upstream.host}/${repo}:v1`]), `skopeo copy --all to ${repo}`);
  }

  const all = await pullToLayout(t, env, `${cache.host}/hub/lib/multi:v1`, 'v1', ['--all']);
  t.same(layoutBlobs(all), multi.blobs, 'skopeo --all: the index, both platform manifests and all blobs, byte-identical');
  const blobGets = fw.count('GET', /\/blobs\/sha256:/);
  const again = await pullToLayout(t, env, `${cache.host}/hub/lib/multi:v1`, 'v1', ['--all']);
  t.same(layoutBlobs(again), multi.blobs, 'second skopeo --all pull identical');
  t.equal(fw.count('GET', /\/blobs\/sha256:/), blobGets, 'second pull: no upstream blob request');

  const d = await startDockerd(t);
  const dockerRef = `${cache.host}/hub/lib/multi-docker:v1`;
  const pull = await d.docker(['pull', dockerRef]);
  t.equal(pull.code, 0, 'docker pull of a multi-platform image through the cache', pull);
  const inspect = await d.docker(['image', 'inspect', '--format', '{{.Id}} {{json .RepoDigests}}', dockerRef]);
  t.equal(inspect.stdout.split(' ')[0], multi.amd64.configDigest, 'docker got the linux/amd64 image');
  t.match(inspect.stdout, multi.indexDigest, 'its repo digest is the index digest');
  for (const digest of [...multi.arm64.layerDigests, multi.arm64.configDigest]) {
    t.equal(fw.count('GET', new RegExp(`multi-docker/blobs/${digest}`)), 0, `arm64 blob ${digest.slice(7, 19)} not fetched: only what clients ask for`);
  }

  const podmanRef = `${cache.host}/hub/lib/multi-podman:v1`;
  await ok(t, env.podman(['pull', '--tls-verify=false', '--arch', 'arm64', podmanRef]), 'podman pull --arch arm64 through the cache');
  const pInspect = await ok(t, env.podman(['image', 'inspect', '--format', '{{.Id}}', podmanRef]), 'podman image inspect');
  t.equal(`sha256:${pInspect.stdout.trim()}`, multi.arm64.configDigest, 'podman got the linux/arm64 image');
  await ok(t, env.podman(['rmi', '--all', '--force']), 'podman rmi');
  const upstreamGets = fw.count('GET', /multi-podman\/blobs\/sha256:/);
  await ok(t, env.podman(['pull', '--tls-verify=false', '--arch', 'arm64', podmanRef]), 'podman pull again');
  t.equal(fw.count('GET', /multi-podman\/blobs\/sha256:/), upstreamGets, 'second podman pull: no upstream blob request');
});

t.test('a tag moved upstream is seen through the cache after tagTtl (docker-registry upstream, skopeo)', async (t) => {
  if (!requireTools(t, ['docker-registry', 'skopeo'])) return;
  const upstream = await startDockerRegistry(t);
  const cache = await startRegistry(t, { proxy: { upstreams: [{ prefix: 'mirror/', url: upstream.url, tagTtl: 6 }] as never } });
  const env = await containersEnv(t);
  const dir = tempDir(t, 'proxy-ttl-');
  const one = makeOciLayout(path.join(dir, 'one'), { tag: 'latest', layers: 1, seed: 41 });
  const two = makeOciLayout(path.join(dir, 'two'), { tag: 'latest', layers: 1, seed: 42 });
  const push = (src: string) => ok(t, env.skopeo(['copy', '--dest-tls-verify=false', `oci:${src}:latest`, `docker://${upstream.host}/lib/moving:latest`]), 'push latest');
  const digest = async () => (await fetch(`${cache.url}/v2/mirror/lib/moving/manifests/latest`, { method: 'HEAD', headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).headers.get('docker-content-digest');
  await push(path.join(dir, 'one'));
  t.equal(await digest(), one.manifestDigest, 'first: image one');
  await push(path.join(dir, 'two'));
  // Before the TTL even on a loaded machine, where a skopeo push can take seconds.
  t.equal(await digest(), one.manifestDigest, 'moved upstream, before tagTtl: still image one');
  await new Promise((r) => setTimeout(r, 6100));
  t.equal(await digest(), two.manifestDigest, 'after tagTtl: image two');
  const pulled = await pullToLayout(t, env, `${cache.host}/mirror/lib/moving:latest`, 'latest');
  t.same(layoutBlobs(pulled), two.blobs, 'skopeo pulls image two byte-identical');
});

t.test('Bearer upstream (this registry in token mode): with credentials, and anonymous where rules allow', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const auth = authConfig(t, { alice: 'wonderland' }, {
    token: { enabled: true },
    rules: [
      { repository: 'public/**', who: ['$anonymous', '$authenticated'], actions: ['pull'] },
      { repository: '**', who: ['alice'], actions: ['pull', 'push', 'delete'] },
    ] as never,
  });
  const upstream = await startRegistry(t, auth.overrides);
  const fw = await startForwarder(t, upstream.url);
  process.env.PROXY_TEST_PASSWORD = 'wonderland'; // checked at start, read again whenever the upstream asks
  t.teardown(() => {
    delete process.env.PROXY_TEST_PASSWORD;
  });
  const cache = await startRegistry(t, {
    proxy: {
      upstreams: [
        { prefix: 'priv/', url: fw.url, username: 'alice', passwordEnv: 'PROXY_TEST_PASSWORD' },
        { prefix: 'anon/', url: fw.url },
      ] as never,
    },
  });
  const env = await containersEnv(t);
  const dir = tempDir(t, 'proxy-bearer-');
  const img = makeOciLayout(path.join(dir, 'src'), { tag: 'v1', layers: 2, seed: 51 });
  for (const repo of ['team/app', 'public/app']) {
    await ok(t, env.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', 'alice:wonderland', `oci:${path.join(dir, 'src')}:v1`, `docker://${upstream.host}/${repo}:v1`]), `push ${repo}`);
  }
  const challenge = await fetch(`${upstream.url}/v2/team/app/manifests/v1`);
  t.equal(challenge.status, 401);
  t.match(challenge.headers.get('www-authenticate'), /^Bearer realm=/, 'the upstream challenges with Bearer');

  const viaCreds = await pullToLayout(t, env, `${cache.host}/priv/team/app:v1`, 'v1');
  t.same(layoutBlobs(viaCreds), img.blobs, 'with credentials: byte-identical');
  const viaAnon = await pullToLayout(t, env, `${cache.host}/anon/public/app:v1`, 'v1');
  t.same(layoutBlobs(viaAnon), img.blobs, 'anonymous token: byte-identical');
  const refused = await fetch(`${cache.url}/v2/anon/team/app/manifests/v1`);
  t.equal(refused.status, 502, 'anonymous on a private upstream repository: refused by the upstream');
  const tokenRequests = fw.count('GET', /^\/token/);
  t.ok(tokenRequests >= 2 && tokenRequests <= 4, `tokens fetched per scope and reused (${tokenRequests} token requests)`);
  await pullToLayout(t, env, `${cache.host}/priv/team/app:v1`, 'v1');
  t.equal(fw.count('GET', /^\/token/), tokenRequests, 'a second pull of cached content needs no token');
});

t.test('20 clients pulling one uncached large blob cause one upstream download (docker-registry upstream)', async (t) => {
  if (!requireTools(t, ['docker-registry', 'skopeo'])) return;
  const upstream = await startDockerRegistry(t);
  const fw = await startForwarder(t, upstream.url);
  const cache = await startRegistry(t, { proxy: { upstreams: [{ prefix: 'hub/', url: fw.url }] as never } });
  const env = await containersEnv(t);
  const src = path.join(tempDir(t, 'proxy-big-'), 'layout');
  const img = makeOciLayout(src, { tag: 'v1', layers: 1, layerBytes: 100 * 1024 * 1024, seed: 61 });
  await ok(t, env.skopeo(['copy', '--dest-tls-verify=false', `oci:${src}:v1`, `docker://${upstream.host}/lib/big:v1`]), 'push a 100 MiB layer');
  const layer = img.layerDigests[0]!;
  fw.blobDelayMs = 300;
  const bodies = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const res = await fetch(`${cache.url}/v2/hub/lib/big/blobs/${layer}`);
      // Hashed as it streams: 20 copies of the layer never sit in this process at once.
      const hash = createHash('sha256');
      for await (const chunk of res.body!) hash.update(chunk);
      return { status: res.status, digest: `sha256:${hash.digest('hex')}` };
    }),
  );
  t.equal(fw.count('GET', new RegExp(layer)), 1, 'one upstream GET for 20 clients');
  t.ok(bodies.every((b) => b.status === 200 && b.digest === layer), 'all 20 got the verified bytes');
});
