import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import t, { type Test } from 'tap';
import { containersEnv, type ContainersEnv, type ToolResult } from '../helpers/containers';
import { startDockerd, type Dockerd } from '../helpers/dockerd';
import { layoutBlobs, makeOciLayout, readLayoutBlob, untar } from '../helpers/oci-layout';
import { startReplicas, type Balancing, type ReplicaSet } from '../helpers/replicas';
import { tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { imageChain, pullV1, pushV1 } from '../helpers/v1';
import { blobOf, buildImage, pullsWhole, pushChunked, putManifest, sha256, withLayers, type BuiltImage } from '../helpers/v2';

// Acceptance (issue 32): three registry processes (dist/server.js) on one PostgreSQL index and one s3rver
// bucket, behind Debian's nginx running the shipped config with the replicas as its upstream. Twice: with
// round-robin, and with the requests of one upload sent to different replicas on purpose (POST to one,
// PATCH to another, PUT to a third). Each time skopeo, podman, docker and the v1 flow push and pull byte
// for byte; 8 concurrent pushers of overlapping images end with every image whole and every blob stored
// once (one object in the bucket per row of the blobs table). Then: a tag moved through one replica is
// what the others serve within index.postgres.cacheStaleness (their memory of manifest reads, docs/replicas.md).

const MiB = 1024 * 1024;
// index.postgres.cacheStaleness as the replicas run it (the default): a change is seen on the others within it.
const CACHE_STALENESS_MS = 1000;
const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json';

/** Read `url` until `ok` (reads, and ms since the call), or undefined if the bound passes first. */
async function seenWithin(url: string, ok: (m: Awaited<ReturnType<typeof get>>) => boolean): Promise<{ reads: number; ms: number } | undefined> {
  const start = performance.now();
  for (let reads = 1; ; reads++) {
    if (ok(await get(url, { accept: ACCEPT }))) return { reads, ms: performance.now() - start };
    if (performance.now() - start > CACHE_STALENESS_MS) return undefined;
    await new Promise((r) => setTimeout(r, 5));
  }
}

const said = (r: ToolResult | { code: number | null; stdout: string; stderr: string }) => ({
  code: r.code,
  stdout: r.stdout.slice(-2000),
  stderr: r.stderr.slice(-2000),
});

async function ok(t: Test, run: Promise<ToolResult>, what: string): Promise<ToolResult> {
  const r = await run;
  t.equal(r.code, 0, `${what} (${r.ms} ms)`, said(r));
  return r;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: Buffer; digest: string | null }> {
  const res = await fetch(url, { headers });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), digest: res.headers.get('docker-content-digest') };
}

/** Every blob a manifest names is served with its bytes (through nginx). */
async function servesWhole(t: Test, set: ReplicaSet, repo: string, ref: string): Promise<string> {
  const m = await get(`${set.base}/v2/${repo}/manifests/${ref}`, { accept: ACCEPT });
  t.equal(m.status, 200, `${repo}:${ref} manifest served`);
  const doc = JSON.parse(m.body.toString()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  for (const d of [doc.config, ...doc.layers]) {
    const b = await get(`${set.base}/v2/${repo}/blobs/${d.digest}`);
    t.ok(b.status === 200 && sha256(b.body) === d.digest && b.body.length === d.size, `${repo} blob ${d.digest.slice(7, 19)} whole`);
  }
  return sha256(m.body);
}

async function skopeoRoundTrip(t: Test, set: ReplicaSet, env: ContainersEnv, repo: string): Promise<void> {
  const work = tempDir(t, 'replicas-skopeo-');
  const src = path.join(work, 'src');
  // 6 MiB layers: multipart uploads on S3, whose parts a PATCH on one replica and a PUT on another share.
  const img = makeOciLayout(src, { tag: 'v1', layers: 2, layerBytes: 6 * MiB, seed: 32 });
  const ref = `docker://${set.tlsHost}/${repo}:v1`;
  await ok(t, env.skopeo(['copy', '--dest-cert-dir', set.caDir, `oci:${src}:v1`, ref]), `skopeo push ${repo}:v1`);
  const back = path.join(work, 'back');
  await ok(t, env.skopeo(['copy', '--src-cert-dir', set.caDir, ref, `oci:${back}:v1`]), `skopeo pull ${repo}:v1`);
  t.same(layoutBlobs(back), img.blobs, 'skopeo: the same blob set back');
  t.ok(img.blobs.every((d) => readLayoutBlob(back, d).equals(readLayoutBlob(src, d))), 'skopeo: every blob byte for byte');
}

async function podmanRoundTrip(t: Test, set: ReplicaSet, env: ContainersEnv, from: string, repo: string): Promise<void> {
  const source = `${set.tlsHost}/${from}:v1`;
  const ref = `${set.tlsHost}/${repo}:v1`;
  await ok(t, env.podman(['pull', '--cert-dir', set.caDir, source]), `podman pull ${from}:v1`);
  await ok(t, env.podman(['tag', source, ref]), 'podman tag');
  const digestFile = path.join(env.dir, `${repo.replace(/\//g, '_')}.digest`);
  await ok(t, env.podman(['push', '--cert-dir', set.caDir, '--format', 'v2s2', '--digestfile', digestFile, ref]), `podman push ${repo}:v1 (v2s2)`);
  await ok(t, env.podman(['rmi', '--all', '--force']), 'podman rmi --all');
  await ok(t, env.podman(['pull', '--cert-dir', set.caDir, ref]), `podman pull ${repo}:v1 back`);
  const served = await servesWhole(t, set, repo, 'v1');
  const inspect = await ok(t, env.podman(['image', 'inspect', '--format', '{{.Digest}}', ref]), 'podman image inspect');
  t.equal(inspect.stdout.trim(), served, 'podman pulled the digest the registry serves');
}

async function dockerRoundTrip(t: Test, set: ReplicaSet, d: Dockerd, repo: string): Promise<void> {
  const ctx = tempDir(t, 'replicas-docker-');
  const hello = `hello from a replica ${randomBytes(8).toString('hex')}\n`;
  writeFileSync(path.join(ctx, 'hello.txt'), hello);
  writeFileSync(path.join(ctx, 'big.bin'), randomBytes(6 * MiB)); // a layer of several S3 parts
  writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY big.bin /big.bin\nCOPY hello.txt /hello.txt\n');
  // 127.0.0.0/8 is insecure for dockerd: TLS without verification (skopeo and podman verify the CA).
  const ref = `${set.tlsHost}/${repo}:v1`;
  t.equal((await d.docker(['build', '-t', ref, ctx], { env: { DOCKER_BUILDKIT: '0' } })).code, 0, 'docker build');
  const push = await d.docker(['push', ref]);
  t.equal(push.code, 0, `docker push ${repo}:v1`, said(push));
  const digest = /v1: digest: (sha256:[a-f0-9]{64})/.exec(push.stdout)?.[1];
  t.equal(await servesWhole(t, set, repo, 'v1'), digest, 'the registry serves the digest docker pushed');
  const m = await get(`${set.base}/v2/${repo}/manifests/v1`, { accept: ACCEPT });
  const layers = (JSON.parse(m.body.toString()) as { layers: { digest: string }[] }).layers;
  const last = await get(`${set.base}/v2/${repo}/blobs/${layers.at(-1)!.digest}`);
  t.equal(untar(gunzipSync(last.body)).get('hello.txt')?.toString(), hello, 'the last layer holds hello.txt');
  t.equal((await d.docker(['rmi', ref])).code, 0, 'docker rmi');
  const pull = await d.docker(['pull', ref]);
  t.equal(pull.code, 0, `docker pull ${repo}:v1`, said(pull));
  t.match(pull.stdout, `Digest: ${digest}`, 'docker pulled the pushed digest');
}

async function v1RoundTrip(t: Test, set: ReplicaSet, repo: string): Promise<void> {
  const chain = imageChain(3, { emptyAt: 1, layerBytes: 6 * MiB + 17 });
  const pushed = await pushV1(set.base, repo, 'latest', chain);
  t.same(pushed.pushed, chain.map((i) => i.id), 'v1: every image pushed');
  const pulled = await pullV1(set.base, repo, 'latest');
  t.same(pulled.map((p) => p.id), chain.map((i) => i.id), 'v1: pulled root first');
  t.ok(chain.every((img, i) => pulled[i]!.json.equals(img.json) && pulled[i]!.layer.equals(img.layer)), 'v1: json and layers byte for byte');
}

/** 8 pushers, each an image of 2 of 3 shared layers (one of 6 MiB) and one of its own, all at once. */
async function concurrentPushers(t: Test, set: ReplicaSet, prefix: string): Promise<void> {
  const shared = [randomBytes(6 * MiB), randomBytes(700_000), randomBytes(90_000)].map((b) => blobOf(b, 'application/vnd.oci.image.layer.v1.tar+gzip'));
  const images: { repo: string; image: BuiltImage }[] = [];
  for (let i = 0; i < 8; i++) {
    const base = buildImage({ layers: 1, layerBytes: 50_000 + i });
    const mine = [shared[i % 3]!, shared[(i + 1) % 3]!, base.layers[0]!];
    images.push({ repo: `${prefix}/pusher${i % 4}`, image: withLayers(base, mine) });
  }
  const before = { rows: Number((await set.query<{ n: number }>('SELECT count(*)::int AS n FROM blobs'))[0]!.n), objects: set.blobObjects() };
  const results = await Promise.allSettled(
    images.map(async ({ repo, image }, i) => {
      for (const blob of [image.config, ...image.layers]) await pushChunked(set.base, repo, blob);
      const res = await putManifest(set.base, repo, `p${i}`, image.manifest, image.mediaType);
      const text = await res.text();
      if (res.status !== 201) throw new Error(`PUT manifest p${i}: ${res.status} ${text}`);
    }),
  );
  const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [`pusher ${i}: ${String((r.reason as Error).message)}`] : []));
  t.same(failures, [], 'all 8 concurrent pushes succeed');
  for (const [i, { repo, image }] of images.entries()) t.ok(await pullsWhole(set.base, repo, `p${i}`, image), `image p${i} (${repo}) is whole`);

  // Each distinct blob once: one row per digest, one object per row. The loser of two identical uploads
  // racing is deleted just after its commit answers: wait for that (bounded).
  const digests = new Set(images.flatMap(({ image }) => [image.config, ...image.layers, { digest: image.manifestDigest }].map((b) => b.digest)));
  let rows = 0;
  let objects = 0;
  for (let waited = 0; waited < 10_000; waited += 200) {
    rows = Number((await set.query<{ n: number }>('SELECT count(*)::int AS n FROM blobs'))[0]!.n) - before.rows;
    objects = set.blobObjects() - before.objects;
    if (objects === rows) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const listed = new Set(
    (await set.query<{ digest: string }>(`SELECT digest FROM blobs WHERE digest IN (${[...digests].map((d) => `'${d}'`).join(',')})`)).map((r) => r.digest),
  );
  t.equal(listed.size, digests.size, `every one of the ${digests.size} distinct blobs and manifests has its row`);
  t.equal(rows, digests.size, 'no other row was added');
  t.equal(objects, rows, `one object in the bucket per row (${objects})`);
}

async function clientsThrough(t: Test, balancing: Balancing, tools: { env?: ContainersEnv; dockerd?: Dockerd }): Promise<ReplicaSet | undefined> {
  const set = await startReplicas(t, { balancing });
  if (!set) return undefined;
  const p = balancing === 'split' ? 'split' : 'rr';
  if (tools.env) {
    await t.test('skopeo', (t) => skopeoRoundTrip(t, set, tools.env!, `${p}/skopeo`));
    await t.test('podman', (t) => podmanRoundTrip(t, set, tools.env!, `${p}/skopeo`, `${p}/podman`));
  }
  if (tools.dockerd) await t.test('docker', (t) => dockerRoundTrip(t, set, tools.dockerd!, `${p}/docker`));
  await t.test('the v1 flow', (t) => v1RoundTrip(t, set, `${p}/v1`));
  await t.test('8 concurrent pushers of overlapping images', (t) => concurrentPushers(t, set, `${p}/many`));

  // Every replica served part of it: the load was spread (round-robin), or split by method.
  const served = set.replicas.map((r) => (r.log().match(/"msg":"request"/g) ?? []).length);
  t.ok(served.every((n) => n > 10), `every replica served requests (${served.join(', ')})`);
  if (balancing === 'split') {
    const patches = set.replicas.map((r) => (r.log().match(/"method":"PATCH"/g) ?? []).length);
    t.ok(patches[0] === 0 && patches[2] === 0 && patches[1]! > 0, `only replica 1 got PATCHes (${patches.join(', ')})`);
  }
  t.same(set.unexpectedExits, [], 'no replica exited by itself');
  const errors = set.replicas.map((r) => (r.log().match(/"level":50/g) ?? []).length);
  t.same(errors, set.replicas.map(() => 0), 'no replica logged an error');
  return set;
}

t.test('three replicas behind nginx: real clients, concurrent pushers, round-robin then split uploads', async (t) => {
  if (!requireTools(t, ['skopeo', 'podman', 'dockerd', 'docker'])) return;
  const env = await containersEnv(t);
  const dockerd = await startDockerd(t);
  await t.test('round-robin', async (t) => {
    const set = await clientsThrough(t, 'round-robin', { env, dockerd });
    if (!set) return;

    await t.test('a tag moved through one replica is served by the others within index.postgres.cacheStaleness', async (t) => {
      const repo = 'rr/moving';
      const a = buildImage({ layers: 1, layerBytes: 1000 });
      const b = buildImage({ layers: 1, layerBytes: 1001 });
      const [r0, r1, r2] = set.replicas.map((r) => r.proc!.url);
      for (const img of [a, b]) for (const blob of [img.config, ...img.layers]) await pushChunked(r0!, repo, blob);
      // Warm every replica with the tag first: their memory (docs/replicas.md) now holds `a`.
      t.equal((await putManifest(r0!, repo, 'live', a.manifest, a.mediaType)).status, 201);
      for (const url of [r1, r2]) t.equal((await get(`${url}/v2/${repo}/manifests/live`, { accept: ACCEPT })).digest, a.manifestDigest);
      let atOnce = 0;
      let longest = 0;
      let late = 0;
      for (let i = 0; i < 20; i++) {
        const img = i % 2 ? a : b;
        const writer = set.replicas[i % 3]!.proc!.url;
        t.equal((await putManifest(writer, repo, 'live', img.manifest, img.mediaType)).status, 201);
        for (const r of set.replicas) {
          if (r.proc!.url === writer) continue;
          const seen = await seenWithin(`${r.proc!.url}/v2/${repo}/manifests/live`, (m) => m.digest === img.manifestDigest && sha256(m.body) === img.manifestDigest);
          if (!seen) late++;
          else if (seen.reads === 1) atOnce++;
          longest = Math.max(longest, seen?.ms ?? Infinity);
        }
      }
      t.equal(late, 0, 'the 40 reads after 20 tag moves all saw the new manifest within the bound');
      t.comment(`${atOnce} of 40 first reads right after a move already saw it; the longest took ${longest.toFixed(0)} ms (bound ${CACHE_STALENESS_MS} ms)`);
      // Deleted through one, gone through the others.
      const del = await fetch(`${r1}/v2/${repo}/manifests/${a.manifestDigest}`, { method: 'DELETE' });
      t.equal(del.status, 202, 'manifest deleted through replica 1');
      for (const url of [r0, r2]) t.ok(await seenWithin(`${url}/v2/${repo}/manifests/${a.manifestDigest}`, (m) => m.status === 404), 'and unknown to the others within the bound');
    });
  });
  await t.test('split: each upload POSTed to replica 0, PATCHed on 1, PUT on 2', async (t) => {
    await env.podman(['rmi', '--all', '--force']);
    await clientsThrough(t, 'split', { env, dockerd });
  });
});
