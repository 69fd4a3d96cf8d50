import { randomBytes } from 'node:crypto';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { authConfig, basic } from '../helpers/auth';
import { containersEnv } from '../helpers/containers';
import { startDockerd } from '../helpers/dockerd';
import { startLoggedRegistry, type LoggedRegistry } from '../helpers/logged-registry';
import { makeOciLayout } from '../helpers/oci-layout';
import { tempDir } from '../helpers/server';
import { requireTools } from '../helpers/tools';
import { imageChain, pushV1 } from '../helpers/v1';
import { sha256 } from '../helpers/v2';
import { startReceiver, type ReceivedEvent, type Receiver } from '../helpers/webhook-receiver';

// Acceptance: a webhook receiver hears of every blob, manifest and tag that real clients push (skopeo, dockerd
// 20.10, the v1 flow of Docker 1.x), with their digests and sizes, the repository, the user who pushed (alice,
// by Basic credentials) and the id of the request that made the change (as the request log names it).

const ALICE = 'alice-password-1';

async function setup(t: Test): Promise<{ reg: LoggedRegistry; rx: Receiver }> {
  const rx = await startReceiver(t);
  const auth = authConfig(t, { alice: ALICE });
  const reg = await startLoggedRegistry(t, {
    ...auth.overrides,
    notifications: { endpoints: [{ name: 'hook', url: rx.url, backoff: { initial: '50ms', max: '1s' } }] } as never,
  });
  return { reg, rx };
}

/** Every push event of `repo` once the manifest's (with `tag`) has arrived. */
async function pushesOf(rx: Receiver, repo: string, tag: string): Promise<ReceivedEvent[]> {
  await rx.waitFor(() => rx.accepted().some((e) => e.target.repository === repo && e.target.tag === tag), 30_000);
  return rx.accepted().filter((e) => e.action === 'push' && e.target.repository === repo);
}

function checkV2Push(t: Test, reg: LoggedRegistry, events: ReceivedEvent[], blobs: Map<string, number>, manifest: { digest: string; size: number; tag: string }) {
  const blobEvents = events.filter((e) => e.target.mediaType === 'application/octet-stream');
  t.same(blobEvents.map((e) => e.target.digest).sort(), [...blobs.keys()].sort(), 'one event per pushed blob');
  for (const e of blobEvents) t.equal(e.target.size, blobs.get(e.target.digest!), `size of ${e.target.digest?.slice(7, 19)}`);
  const m = events.filter((e) => e.target.digest === manifest.digest);
  t.equal(m.length, 1, 'one event for the manifest');
  t.match(m[0]?.target, { tag: manifest.tag, size: manifest.size, length: manifest.size });
  t.equal(events.indexOf(m[0]!), events.length - 1, 'the manifest after its blobs');
  const repo = m[0]!.target.repository;
  t.equal(m[0]?.request?.id, reg.requestIds('PUT', new RegExp(`^/v2/${repo}/manifests/${manifest.tag}$`)).at(-1), 'request id of the manifest PUT');
  t.ok(events.every((e) => e.actor.name === 'alice'), 'actor: alice');
  t.ok(events.every((e) => e.request?.addr === '127.0.0.1' && e.request.host === reg.host), 'request addr and host');
}

t.test('skopeo: one event per blob and for the tagged manifest', async (t) => {
  if (!requireTools(t, ['skopeo'])) return;
  const { reg, rx } = await setup(t);
  const env = await containersEnv(t);
  const src = path.join(tempDir(t, 'notify-skopeo-'), 'src');
  const img = makeOciLayout(src, { tag: 'v1', layers: 2, layerBytes: 5000, seed: 31 });
  const r = await env.skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', `alice:${ALICE}`, `oci:${src}:v1`, `docker://${reg.host}/notify/skopeo:v1`]);
  t.equal(r.code, 0, 'skopeo copy', { stderr: r.stderr });
  const events = await pushesOf(rx, 'notify/skopeo', 'v1');
  const blobSizes = new Map([img.configDigest, ...img.layerDigests].map((d) => [d, readSize(src, d)]));
  checkV2Push(t, reg, events, blobSizes, { digest: img.manifestDigest, size: img.manifest.length, tag: 'v1' });
  t.match(events[0]?.request?.useragent, /skopeo|containers/i);
});

t.test('docker push (dockerd 20.10): one event per blob and for the tagged manifest', async (t) => {
  if (!requireTools(t, ['dockerd', 'docker'])) return;
  const { reg, rx } = await setup(t);
  const d = await startDockerd(t);
  const ctx = path.join(tempDir(t, 'notify-docker-'), 'ctx');
  mkdirSync(ctx);
  writeFileSync(path.join(ctx, 'hello.txt'), `hello ${randomBytes(8).toString('hex')}\n`);
  writeFileSync(path.join(ctx, 'Dockerfile'), 'FROM scratch\nCOPY hello.txt /hello.txt\n');
  const ref = `${reg.host}/notify/docker:v1`;
  t.equal((await d.docker(['build', '-t', ref, ctx], { env: { DOCKER_BUILDKIT: '0' } })).code, 0, 'docker build');
  t.equal((await d.docker(['login', '-u', 'alice', '--password-stdin', reg.host], { input: `${ALICE}\n` })).code, 0, 'docker login');
  const push = await d.docker(['push', ref]);
  t.equal(push.code, 0, 'docker push', { stderr: push.stderr });
  const pushed = /v1: digest: (sha256:[a-f0-9]{64}) size: (\d+)/.exec(push.stdout);
  const manifest = await fetch(`${reg.url}/v2/notify/docker/manifests/v1`, {
    headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json', authorization: basic('alice', ALICE) },
  });
  const doc = (await manifest.json()) as { config: { digest: string; size: number }; layers: { digest: string; size: number }[] };
  const events = await pushesOf(rx, 'notify/docker', 'v1');
  const blobs = new Map([doc.config, ...doc.layers].map((b) => [b.digest, b.size]));
  checkV2Push(t, reg, events, blobs, { digest: pushed![1]!, size: Number(pushed![2]), tag: 'v1' });
  t.match(events[0]?.request?.useragent, /^docker\/20/);
});

t.test('v1 flow (Docker 1.x): json and layer per image, then the tag', async (t) => {
  const { reg, rx } = await setup(t);
  const chain = imageChain(3);
  await pushV1(reg.url, 'notify/v1', 'latest', chain, { authorization: basic('alice', ALICE) });
  const events = await pushesOf(rx, 'notify/v1', 'latest');
  const want = chain.flatMap((img) => [
    [img.id, sha256(img.json), img.json.length, 'application/vnd.docker.container.image.v1+json', null],
    [img.id, sha256(img.layer), img.layer.length, 'application/octet-stream', null],
  ]);
  const top = chain.at(-1)!;
  want.push([top.id, sha256(top.json), top.json.length, 'application/vnd.docker.container.image.v1+json', 'latest']);
  t.same(events.map((e) => [e.target.imageId, e.target.digest, e.target.size, e.target.mediaType, e.target.tag ?? null]), want);
  t.ok(events.every((e) => e.actor.name === 'alice'), 'actor: alice (the index PUT named her; the token carries her)');
  t.equal(events.at(-1)?.request?.id, reg.requestIds('PUT', /^\/v1\/repositories\/notify\/v1\/tags\/latest$/)[0], 'request id of the tag PUT');
  t.equal(events.at(-1)?.target.url, `${reg.url}/v1/repositories/notify/v1/tags/latest`);
});

function readSize(layout: string, digest: string): number {
  return statSync(path.join(layout, 'blobs', 'sha256', digest.slice(7))).size;
}
