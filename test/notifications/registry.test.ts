import t from 'tap';
import { indexRows } from '../helpers/index-db';
import { startLoggedRegistry } from '../helpers/logged-registry';
import { startRegistry } from '../helpers/server';
import { startReceiver, type ReceivedEvent } from '../helpers/webhook-receiver';
import { blobOf, buildImage, pushBlob, pushImage, sha256 } from '../helpers/v2';
import { imageChain, pushV1 } from '../helpers/v1';

// The events a registry makes for v2 and v1 changes, over plain HTTP (real clients: test/e2e/notifications-clients):
// one per blob, manifest and tag, with digests, sizes, repository, request and actor, in the order of the changes.

const endpoint = (url: string, extra: Record<string, unknown> = {}) => ({ name: 'hook', url, backoff: { initial: '50ms', max: '200ms' }, ...extra });

t.test('v2: blob and manifest pushes, mount, tag and manifest deletes; request ids match the request log', async (t) => {
  const rx = await startReceiver(t);
  const reg = await startLoggedRegistry(t, { notifications: { endpoints: [endpoint(rx.url)] } as never });
  const image = buildImage({ layers: 2 });
  await pushImage(reg.url, 'team/app', 'v1', image);
  const mount = await fetch(`${reg.url}/v2/other/app/blobs/uploads/?mount=${image.layers[0]!.digest}&from=team/app`, { method: 'POST' });
  t.equal(mount.status, 201);
  t.equal((await fetch(`${reg.url}/v2/team/app/manifests/v1`, { method: 'DELETE' })).status, 202);
  t.equal((await fetch(`${reg.url}/v2/team/app/manifests/${image.manifestDigest}`, { method: 'DELETE' })).status, 202);
  await rx.waitFor(() => rx.accepted().length >= 7);
  const events = rx.accepted();
  const brief = events.map((e) => [e.action, e.target.repository, e.target.digest, e.target.tag ?? null]);
  t.same(brief, [
    ['push', 'team/app', image.config.digest, null],
    ['push', 'team/app', image.layers[0]!.digest, null],
    ['push', 'team/app', image.layers[1]!.digest, null],
    ['push', 'team/app', image.manifestDigest, 'v1'],
    ['mount', 'other/app', image.layers[0]!.digest, null],
    ['delete', 'team/app', image.manifestDigest, 'v1'],
    ['delete', 'team/app', image.manifestDigest, null],
  ]);
  const manifest = events[3]!;
  t.match(manifest.target, { mediaType: image.mediaType, size: image.manifest.length, length: image.manifest.length, url: `${reg.url}/v2/team/app/manifests/${image.manifestDigest}` });
  t.match(events[1]!.target, { mediaType: 'application/octet-stream', size: image.layers[0]!.data.length });
  t.equal(events[4]!.target.fromRepository, 'team/app');
  t.same(manifest.request?.id, reg.requestIds('PUT', /^\/v2\/team\/app\/manifests\/v1$/)[0], 'request id as logged');
  t.match(manifest.request, { method: 'PUT', host: reg.host, addr: '127.0.0.1' });
  t.same(manifest.actor, {}, 'anonymous: no actor name');
  t.equal(new Set(events.map((e) => e.id)).size, events.length, 'ids are unique');
  t.equal(rx.deliveries[0]!.headers['content-type'], 'application/vnd.docker.distribution.events.v1+json');
  // The receiver records a POST before the sender has read its answer: wait for the sender's count.
  for (let i = 0; i < 200 && (await reg.app.registry.notifier!.stats())[0]!.delivered < 7; i++) await new Promise((r) => setTimeout(r, 25));
  t.same((await reg.app.registry.notifier!.stats()).map((s) => ({ ...s, oldestPendingAgeSeconds: 0 })), [
    { endpoint: 'hook', pending: 0, oldestPendingAgeSeconds: 0, delivered: 7, failedAttempts: 0, dropped: 0, lastError: null },
  ]);
});

t.test('v1: each image push is two events (json, layer), the tag one more, the tag delete one', async (t) => {
  const rx = await startReceiver(t);
  const reg = await startLoggedRegistry(t, { notifications: { endpoints: [endpoint(rx.url)] } as never });
  const chain = imageChain(2);
  await pushV1(reg.url, 'team/old', 'latest', chain);
  t.equal((await fetch(`${reg.url}/v1/repositories/team/old/tags/latest`, { method: 'DELETE' })).status, 200);
  await rx.waitFor(() => rx.accepted().length >= 6);
  const events = rx.accepted();
  const brief = events.map((e) => [e.action, e.target.imageId, e.target.digest, e.target.size, e.target.tag ?? null]);
  t.same(brief, [
    ['push', chain[0]!.id, sha256(chain[0]!.json), chain[0]!.json.length, null],
    ['push', chain[0]!.id, sha256(chain[0]!.layer), chain[0]!.layer.length, null],
    ['push', chain[1]!.id, sha256(chain[1]!.json), chain[1]!.json.length, null],
    ['push', chain[1]!.id, sha256(chain[1]!.layer), chain[1]!.layer.length, null],
    ['push', chain[1]!.id, sha256(chain[1]!.json), chain[1]!.json.length, 'latest'],
    ['delete', chain[1]!.id, undefined, undefined, 'latest'],
  ]);
  t.equal(events[4]!.request?.id, reg.requestIds('PUT', /^\/v1\/repositories\/team\/old\/tags\/latest$/)[0]);
  t.match(events[4]!.request?.useragent, /^docker\/1\.5\.0/);
  t.ok(events.every((e) => e.target.repository === 'team/old'));
});

t.test('filters: actions, repository globs, ignored media types, disabled endpoints', async (t) => {
  const all = await startReceiver(t);
  const prod = await startReceiver(t);
  const off = await startReceiver(t);
  const reg = await startRegistry(t, {
    notifications: {
      endpoints: [
        endpoint(all.url, { name: 'all' }),
        endpoint(prod.url, { name: 'prod', actions: ['push'], repositories: ['prod/**'], ignoreMediaTypes: ['application/octet-stream'] }),
        endpoint(off.url, { name: 'off', enabled: false }),
      ],
    } as never,
  });
  const image = buildImage({ layers: 1 });
  await pushImage(reg.url, 'prod/web', 'v1', image);
  await pushImage(reg.url, 'dev/web', 'v1', image);
  await fetch(`${reg.url}/v2/prod/web/manifests/v1`, { method: 'DELETE' });
  await all.waitFor(() => all.accepted().length >= 7);
  await prod.waitFor(() => prod.accepted().length >= 1);
  await new Promise((r) => setTimeout(r, 300));
  t.same(prod.accepted().map((e: ReceivedEvent) => [e.action, e.target.repository, e.target.tag]), [['push', 'prod/web', 'v1']]);
  t.equal(off.deliveries.length, 0, 'a disabled endpoint gets nothing');
  t.equal(all.accepted().length, 7);
});

t.test('pull events only with notifications.pullEvents; HEAD is no pull', async (t) => {
  const rx = await startReceiver(t);
  const reg = await startRegistry(t, { notifications: { pullEvents: true, endpoints: [endpoint(rx.url, { actions: ['pull'] })] } as never });
  const image = buildImage({ layers: 1 });
  await pushImage(reg.url, 'a/b', 'v1', image);
  await fetch(`${reg.url}/v2/a/b/manifests/v1`, { method: 'HEAD' });
  const res = await fetch(`${reg.url}/v2/a/b/manifests/v1`, { headers: { accept: image.mediaType } });
  await res.arrayBuffer();
  await rx.waitFor(() => rx.accepted().length >= 1);
  await new Promise((r) => setTimeout(r, 200));
  t.same(rx.accepted().map((e) => [e.action, e.target.digest, e.target.tag]), [['pull', image.manifestDigest, 'v1']]);
});

t.test('pulls through the pull-through cache: the same rule, and the event names the request', async (t) => {
  const rx = await startReceiver(t);
  const upstream = await startRegistry(t);
  const image = buildImage({ layers: 1 });
  await pushImage(upstream.url, 'lib/app', 'v1', image);
  const reg = await startRegistry(t, {
    notifications: { pullEvents: true, endpoints: [endpoint(rx.url, { actions: ['pull'] })] } as never,
    proxy: { upstreams: [{ prefix: 'up/', url: upstream.url }] as never },
  });
  await fetch(`${reg.url}/v2/up/lib/app/manifests/v1`, { method: 'HEAD', headers: { accept: image.mediaType } });
  const res = await fetch(`${reg.url}/v2/up/lib/app/manifests/v1`, { headers: { accept: image.mediaType, 'user-agent': 'pull-test/1' } });
  await res.arrayBuffer();
  await rx.waitFor(() => rx.accepted().length >= 1);
  await new Promise((r) => setTimeout(r, 200));
  t.same(rx.accepted().map((e) => [e.action, e.target.tag, e.request?.method, e.request?.useragent]), [['pull', 'v1', 'GET', 'pull-test/1']], 'one pull, the GET, with its request');
});

t.test('no endpoint: no outbox row, nothing sent', async (t) => {
  const reg = await startRegistry(t);
  t.equal(reg.app.registry.notifier, undefined);
  await pushBlob(reg.url, 'a/b', { digest: sha256('x'), data: Buffer.from('x'), mediaType: 'application/octet-stream' });
  t.equal(await indexRows(reg.app.registry.index).value('SELECT count(*) FROM notify_outbox'), 0);
});

t.test('a paused notifier (a replica that stopped leading) sends nothing; resumed, it sends what was queued, in order', async (t) => {
  const rx = await startReceiver(t);
  const reg = await startRegistry(t, { notifications: { endpoints: [endpoint(rx.url)] } as never });
  const notifier = reg.app.registry.notifier!;
  await notifier.pause();
  const [one, two] = [blobOf(Buffer.from('one')), blobOf(Buffer.from('two'))];
  await pushBlob(reg.url, 'team/paused', one);
  await pushBlob(reg.url, 'team/paused', two);
  await new Promise((r) => setTimeout(r, 300));
  t.same(rx.accepted(), [], 'nothing sent while paused');
  notifier.start();
  await rx.waitFor(() => rx.accepted().length >= 2);
  t.same(rx.accepted().map((e) => e.target.digest), [one.digest, two.digest], 'queued events, once each, in order');
});
