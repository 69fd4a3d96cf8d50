import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { indexRows } from '../helpers/index-db';
import type { DeepPartial } from '../../src/config/load';
import type { Config } from '../../src/config/schema';
import { startForwarder, type Forwarder } from '../helpers/proxy';
import { startRegistry } from '../helpers/server';
import { blobOf, buildImage, pushImage, putManifest, sha256, withLayers } from '../helpers/v2';

// The pull-through cache against this registry as its upstream (a plain v2 registry), with a forwarder
// in between that counts requests and can corrupt blob bodies or answer 503: manifests by tag and digest,
// tag TTL and revalidation, blob misses streamed and stored once, single-flight, verification, read-only
// namespace, serving stale when the upstream is down. Real clients: test/e2e/proxy-clients.test.ts.

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json';

async function setup(t: Test, upstreamExtra: Record<string, unknown> = {}, cacheOverrides: DeepPartial<Config> = {}) {
  const upstream = await startRegistry(t);
  const fw = await startForwarder(t, upstream.url);
  const cache = await startRegistry(t, {
    ...cacheOverrides,
    proxy: { upstreams: [{ prefix: 'up/', url: fw.url, tagTtl: 60, timeout: 2, ...upstreamExtra }] as never },
  });
  return { upstream, fw, cache };
}

async function get(url: string, init: RequestInit = {}) {
  const res = await fetch(url, { ...init, headers: { accept: ACCEPT, ...(init.headers as Record<string, string>) } });
  return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
}

const manifestGets = (fw: Forwarder) => fw.count('GET', /\/manifests\//);
const blobGets = (fw: Forwarder) => fw.count('GET', /\/blobs\/sha256:/);

t.test('an image pulls through the cache byte-identical; the second pull asks the upstream nothing', async (t) => {
  const { upstream, fw, cache } = await setup(t);
  const img = buildImage({ layers: 2, layerBytes: 300_000 });
  await pushImage(upstream.url, 'lib/app', 'v1', img);

  const m = await get(`${cache.url}/v2/up/lib/app/manifests/v1`);
  t.equal(m.status, 200, 'manifest by tag');
  t.ok(m.body.equals(img.manifest), 'manifest bytes as upstream');
  t.equal(m.headers.get('docker-content-digest'), img.manifestDigest);
  for (const b of [img.config, ...img.layers]) {
    const r = await get(`${cache.url}/v2/up/lib/app/blobs/${b.digest}`);
    t.equal(r.status, 200, 'blob miss streamed');
    t.ok(r.body.equals(b.data), 'blob bytes as upstream');
  }
  const before = { manifests: manifestGets(fw), blobs: blobGets(fw), all: fw.requests.length };
  t.equal(before.blobs, 3, 'each blob fetched upstream once');

  const again = await get(`${cache.url}/v2/up/lib/app/manifests/v1`);
  t.ok(again.body.equals(img.manifest), 'tag served from the cache');
  for (const b of [img.config, ...img.layers]) t.ok((await get(`${cache.url}/v2/up/lib/app/blobs/${b.digest}`)).body.equals(b.data));
  const byDigest = await get(`${cache.url}/v2/up/lib/app/manifests/${img.manifestDigest}`);
  t.ok(byDigest.body.equals(img.manifest), 'and by digest');
  t.equal(fw.requests.length, before.all, 'within tagTtl nothing went upstream');

  const tags = await get(`${cache.url}/v2/up/lib/app/tags/list`);
  t.same(JSON.parse(tags.body.toString()), { name: 'up/lib/app', tags: ['v1'] }, 'the cached tag is listed like a pushed one');
  const stats = cache.app.registry.proxy!.stats();
  t.equal(stats.misses.blobs, 3);
  // A client has its bytes before the blob is recorded, so a request right after may join that download.
  t.equal(stats.hits.blobs + stats.joined, 3, 'the second pulls came from the cache or the download being recorded');
  t.ok(stats.upstreamBytes > 600_000, 'upstream bytes counted');

  const range = await get(`${cache.url}/v2/up/lib/app/blobs/${img.layers[0]!.digest}`, { headers: { range: 'bytes=10-19' } });
  t.equal(range.status, 206, 'Range on a cached blob');
  t.ok(range.body.equals(img.layers[0]!.data.subarray(10, 20)));
});

t.test('a tag moved upstream is seen after tagTtl, not before; an unchanged tag is revalidated with a HEAD only', async (t) => {
  // The TTL leaves room for a loaded machine: only one manifest PUT falls between the first two GETs.
  const { upstream, fw, cache } = await setup(t, { tagTtl: 3 });
  const one = buildImage({ layers: 1 });
  const two = buildImage({ layers: 1 });
  await pushImage(upstream.url, 'lib/app', 'latest', one);
  await pushImage(upstream.url, 'lib/app', two.manifestDigest, two);
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/latest`)).headers.get('docker-content-digest'), one.manifestDigest);
  t.equal((await putManifest(upstream.url, 'lib/app', 'latest', two.manifest, two.mediaType)).status, 201, 'the tag moves upstream');
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/latest`)).headers.get('docker-content-digest'), one.manifestDigest, 'before tagTtl: the cached tag');
  await new Promise((r) => setTimeout(r, 3100));
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/latest`)).headers.get('docker-content-digest'), two.manifestDigest, 'after tagTtl: the moved tag');
  const gets = manifestGets(fw);
  await new Promise((r) => setTimeout(r, 3100));
  const heads = fw.count('HEAD', /\/manifests\//);
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/latest`)).headers.get('docker-content-digest'), two.manifestDigest);
  t.equal(manifestGets(fw), gets, 'unchanged upstream: no manifest GET');
  t.equal(fw.count('HEAD', /\/manifests\//), heads + 1, 'one HEAD');
  // The old image is still there by digest, as content the tag left.
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/${one.manifestDigest}`)).status, 200);
});

t.test('an index and its platform manifests are fetched as clients ask', async (t) => {
  const { upstream, cache } = await setup(t);
  const amd = buildImage({ layers: 1 });
  const arm = buildImage({ layers: 1, arch: 'arm64' });
  await pushImage(upstream.url, 'lib/multi', amd.manifestDigest, amd);
  await pushImage(upstream.url, 'lib/multi', arm.manifestDigest, arm);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: amd.mediaType, digest: amd.manifestDigest, size: amd.manifest.length, platform: { architecture: 'amd64', os: 'linux' } },
        { mediaType: arm.mediaType, digest: arm.manifestDigest, size: arm.manifest.length, platform: { architecture: 'arm64', os: 'linux' } },
      ],
    }),
  );
  t.equal((await putManifest(upstream.url, 'lib/multi', 'multi', index, 'application/vnd.oci.image.index.v1+json')).status, 201);
  const got = await get(`${cache.url}/v2/up/lib/multi/manifests/multi`);
  t.ok(got.body.equals(index), 'the index as upstream');
  const child = await get(`${cache.url}/v2/up/lib/multi/manifests/${arm.manifestDigest}`);
  t.ok(child.body.equals(arm.manifest), 'a platform manifest by digest');
  t.ok((await get(`${cache.url}/v2/up/lib/multi/blobs/${arm.layers[0]!.digest}`)).body.equals(arm.layers[0]!.data));
  t.equal((await get(`${cache.url}/v2/up/lib/multi/manifests/${amd.manifestDigest}`, { method: 'HEAD' })).status, 200, 'HEAD by digest fetches too');
});

t.test('concurrent requests for one missing blob share one upstream download, and all get the right bytes', async (t) => {
  const { upstream, fw, cache } = await setup(t);
  const big = blobOf(randomBytes(8 * 1024 * 1024));
  const img = withLayers(buildImage({ layers: 0 }), [big]);
  await pushImage(upstream.url, 'lib/big', 'v1', img);
  fw.blobDelayMs = 200; // the leader's upstream request is still in flight when the others arrive
  const n = 10;
  const results = await Promise.all(
    Array.from({ length: n }, (_, i) => get(`${cache.url}/v2/up/lib/big/blobs/${big.digest}`, i === n - 1 ? { headers: { range: 'bytes=0-99' } } : {})),
  );
  t.equal(fw.count('GET', new RegExp(big.digest)), 1, 'one upstream GET');
  for (const [i, r] of results.entries()) {
    if (i === n - 1) {
      t.equal(r.status, 206, 'a Range request waited for the download');
      t.ok(r.body.equals(big.data.subarray(0, 100)));
    } else {
      t.equal(r.status, 200);
      t.equal(sha256(r.body), big.digest, `client ${i} got verified bytes`);
    }
  }
  t.equal(cache.app.registry.proxy!.stats().joined, n - 1);
});

t.test('an upstream sending wrong bytes: the client gets an error, nothing is stored', async (t) => {
  const { upstream, fw, cache } = await setup(t);
  const blob = blobOf(randomBytes(1024 * 1024));
  const img = withLayers(buildImage({ layers: 0 }), [blob]);
  await pushImage(upstream.url, 'lib/bad', 'v1', img);
  fw.corrupt = true;
  const url = `${cache.url}/v2/up/lib/bad/blobs/${blob.digest}`;
  const failed = await fetch(url).then(
    async (res) => {
      try {
        const body = Buffer.from(await res.arrayBuffer());
        return { status: res.status, body };
      } catch (err) {
        return { error: err as Error };
      }
    },
    (err: Error) => ({ error: err }),
  );
  t.ok('error' in failed, 'the response is cut short, never a whole body', failed);
  if ('body' in failed) t.not(sha256(failed.body!), blob.digest);
  t.equal(await cache.app.registry.blobs.stat(blob.digest as never), undefined, 'not stored');
  t.equal(cache.app.registry.proxy!.stats().upstreamErrors.digest, 1);
  if (cache.config.storage.driver === 'local') {
    const staged = readdirSync(path.join(cache.dir, 'blobs'), { recursive: true }).filter((f) => String(f).includes('uploads/'));
    t.same(staged, [], 'nothing staged left');
  }
  fw.corrupt = false;
  const ok = await get(url);
  t.equal(sha256(ok.body), blob.digest, 'the next request fetches again and gets the right bytes');
});

t.test('storing fails after the bytes are verified: the client still gets the whole right body; a request that joined fetches on its own', async (t) => {
  const { upstream, fw, cache } = await setup(t);
  const blob = blobOf(randomBytes(4 * 1024 * 1024));
  await pushImage(upstream.url, 'lib/late', 'v1', withLayers(buildImage({ layers: 0 }), [blob]));
  const v2 = cache.app.registry.v2;
  const linkOnStore = v2.linkOnStore;
  // Recording the blob fails, slowly: the client has its bytes by then, and a second request joins meanwhile.
  let refused = 0;
  v2.linkOnStore = () => async () => {
    await new Promise((r) => setTimeout(r, 300));
    refused++;
    v2.linkOnStore = linkOnStore;
    throw new Error('the index refused the record');
  };
  const url = `${cache.url}/v2/up/lib/late/blobs/${blob.digest}`;
  const first = await get(url);
  t.equal(first.status, 200);
  t.equal(sha256(first.body), blob.digest, 'whole and verified');
  const again = await get(url);
  t.equal(refused, 1);
  t.equal(again.status, 200, 'a request that joined the failed download fetched on its own');
  t.equal(sha256(again.body), blob.digest);
  t.equal(blobGets(fw), 2);
  // Its client had the bytes before the blob was recorded: wait for the record (bounded), then a hit.
  for (let i = 0; i < 200 && !(await cache.app.registry.blobs.stat(blob.digest as never)); i++) await new Promise((r) => setTimeout(r, 50));
  t.not(await cache.app.registry.blobs.stat(blob.digest as never), undefined, 'and cached it');
  t.equal(sha256((await get(url)).body), blob.digest);
  t.equal(blobGets(fw), 2, 'served from the cache');
});

t.test('upstream down or rate-limited: cached tags still pull with a Warning, misses answer 503 naming the upstream', async (t) => {
  const { upstream, fw, cache } = await setup(t, { tagTtl: 0 });
  const img = buildImage({ layers: 1 });
  await pushImage(upstream.url, 'lib/app', 'v1', img);
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/v1`)).status, 200);
  t.equal((await get(`${cache.url}/v2/up/lib/app/blobs/${img.layers[0]!.digest}`)).status, 200);
  for (const status of [503, 429]) {
    fw.failWith = status;
    const stale = await get(`${cache.url}/v2/up/lib/app/manifests/v1`);
    t.equal(stale.status, 200, `${status}: cached tag served`);
    t.ok(stale.body.equals(img.manifest));
    t.match(stale.headers.get('warning'), /^110 - "stale: http:\/\/127\.0\.0\.1:\d+ is unavailable/, 'with a Warning header');
    t.equal((await get(`${cache.url}/v2/up/lib/app/blobs/${img.layers[0]!.digest}`)).status, 200, 'cached blob served');
    const miss = await get(`${cache.url}/v2/up/lib/other/manifests/v1`);
    t.equal(miss.status, 503, 'a miss: 503');
    const err = JSON.parse(miss.body.toString()).errors[0];
    t.equal(err.code, 'UNAVAILABLE');
    t.match(err.message, fw.url, 'naming the upstream');
    t.equal((await get(`${cache.url}/v2/up/lib/app/blobs/${img.config.digest}`)).status, 503, 'a blob miss: 503');
  }
  fw.failWith = 0;
  await fw.close(); // connection refused
  const started = Date.now();
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/v1`)).status, 200, 'refused: cached tag served');
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/v2`)).status, 503, 'refused: a miss 503');
  t.ok(Date.now() - started < 4000, 'nothing hangs');
  t.ok(cache.app.registry.proxy!.stats().stale >= 3);
});

t.test('an unresponsive upstream: the configured timeout, then the cached tag or 503', async (t) => {
  const net = await import('node:net');
  const silent = net.createServer(() => undefined); // accepts and never answers
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  t.teardown(() => {
    silent.close();
  });
  const port = (silent.address() as { port: number }).port;
  const cache = await startRegistry(t, { proxy: { upstreams: [{ prefix: 'up/', url: `http://127.0.0.1:${port}`, timeout: 1 }] as never } });
  const started = Date.now();
  const res = await get(`${cache.url}/v2/up/lib/app/manifests/v1`);
  t.equal(res.status, 503);
  t.match(JSON.parse(res.body.toString()).errors[0].message, /did not answer within 1 s/);
  t.ok(Date.now() - started < 3000, 'answered after the timeout');
});

t.test('pushes and deletes under a proxy prefix are DENIED; other repositories stay private and writable', async (t) => {
  const { upstream, cache } = await setup(t);
  const img = buildImage({ layers: 1 });
  await pushImage(upstream.url, 'lib/app', 'v1', img);
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/v1`)).status, 200);
  const denied = async (res: Response, what: string) => {
    t.equal(res.status, 403, what);
    const body = (await res.json()) as { errors: { code: string; message: string }[] };
    t.equal(body.errors[0]!.code, 'DENIED');
    t.equal(body.errors[0]!.message, 'proxy cache is read-only');
  };
  await denied(await fetch(`${cache.url}/v2/up/lib/app/blobs/uploads/`, { method: 'POST' }), 'upload start');
  await denied(await putManifest(cache.url, 'up/lib/app', 'v2', img.manifest, img.mediaType), 'manifest PUT');
  await denied(await fetch(`${cache.url}/v2/up/lib/app/manifests/v1`, { method: 'DELETE' }), 'manifest DELETE');
  await denied(await fetch(`${cache.url}/v2/up/lib/app/blobs/${img.config.digest}`, { method: 'DELETE' }), 'blob DELETE');
  await denied(await fetch(`${cache.url}/v2/_registry/repositories/up/lib/app`, { method: 'DELETE' }), 'repository DELETE');
  const v1 = await fetch(`${cache.url}/v1/repositories/up/lib/app/`, { method: 'PUT', body: '[]', headers: { 'content-type': 'application/json' } });
  t.equal(v1.status, 403, 'a v1 push too');
  t.match(((await v1.json()) as { error: string }).error, 'proxy cache is read-only');
  await pushImage(cache.url, 'private/app', 'v1', img);
  t.equal((await get(`${cache.url}/v2/private/app/manifests/v1`)).status, 200, 'a repository outside the prefix is a normal one');
  t.equal((await get(`${cache.url}/v2/upx/app/manifests/v1`)).status, 404, 'a name merely starting like the prefix is not proxied');
});

t.test('allowed repository globs; a missing upstream manifest or blob is 404', async (t) => {
  const { upstream, cache } = await setup(t, { repositories: ['lib/*'] });
  const img = buildImage({ layers: 1 });
  await pushImage(upstream.url, 'lib/app', 'v1', img);
  await pushImage(upstream.url, 'other/app', 'v1', img);
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/v1`)).status, 200);
  const refused = await get(`${cache.url}/v2/up/other/app/manifests/v1`);
  t.equal(refused.status, 404);
  t.equal(JSON.parse(refused.body.toString()).errors[0].code, 'NAME_UNKNOWN');
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/nope`)).status, 404, 'unknown tag');
  t.equal((await get(`${cache.url}/v2/up/lib/app/blobs/${sha256('nothing')}`)).status, 404, 'unknown blob');
  t.equal((await get(`${cache.url}/v2/up/lib/app/blobs/${sha256('nothing')}`, { method: 'HEAD' })).status, 404, 'HEAD unknown blob');
  const head = await get(`${cache.url}/v2/up/lib/app/blobs/${img.layers[0]!.digest}`, { method: 'HEAD' });
  t.equal(head.status, 200, 'HEAD of a missing blob asks upstream');
  t.equal(head.headers.get('content-length'), String(img.layers[0]!.data.length));
});

t.test('an upstream manifest over the size limit or malformed is refused cleanly (502), nothing stored', async (t) => {
  const upstream = await startRegistry(t, { http: { maxJsonBody: 64 * 1024 } });
  const cache = await startRegistry(t, {
    http: { maxJsonBody: 2048 },
    proxy: { upstreams: [{ prefix: 'up/', url: upstream.url }] as never },
  });
  const layers = Array.from({ length: 40 }, () => blobOf(randomBytes(10)));
  const img = withLayers(buildImage({ layers: 0 }), layers);
  await pushImage(upstream.url, 'lib/huge', 'v1', img);
  const res = await get(`${cache.url}/v2/up/lib/huge/manifests/v1`);
  t.equal(res.status, 502, `${img.manifest.length}-byte manifest over a 2048-byte limit`);
  t.match(JSON.parse(res.body.toString()).errors[0].message, /invalid answer/);
  t.equal((await get(`${cache.url}/v2/up/lib/huge/tags/list`)).status, 404, 'nothing stored');
});

t.test('cached tags expire by last pull (retention keepPulledWithin) and come back on the next pull', async (t) => {
  const { upstream, fw, cache } = await setup(t, {}, { retention: { interval: 0, pullFlush: 1, policies: [{ repository: 'up/**', keepPulledWithin: 7 }] } });
  const a = buildImage({ layers: 1 });
  const b = buildImage({ layers: 1 });
  await pushImage(upstream.url, 'lib/app', 'a', a);
  await pushImage(upstream.url, 'lib/app', 'b', b);
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/a`)).status, 200);
  t.equal((await get(`${cache.url}/v2/up/lib/app/manifests/b`)).status, 200);
  const db = indexRows(cache.app.registry.index);
  const pulled = () => db.value("SELECT count(*) FROM tags WHERE repo = 'up/lib/app' AND pulled_at IS NOT NULL");
  for (let i = 0; i < 50 && (await pulled()) !== 2; i++) await new Promise((r) => setTimeout(r, 100));
  t.equal(await pulled(), 2, 'pulls through the cache are recorded like any pull');
  // b was cached and last pulled "40 days ago".
  const old = Date.now() - 40 * 86400_000;
  await db.run("UPDATE tags SET updated_at = ?, pulled_at = ? WHERE repo = 'up/lib/app' AND tag = 'b'", old, old);
  await db.run("UPDATE manifests SET pulled_at = ? WHERE repo = 'up/lib/app' AND digest = ?", old, b.manifestDigest);
  const run = await cache.app.registry.retention.run();
  t.same([run.tags, run.manifests], [1, 1], 'the unpulled cached tag and its manifest went');
  t.same(JSON.parse((await get(`${cache.url}/v2/up/lib/app/tags/list`)).body.toString()).tags, ['a']);
  const gets = manifestGets(fw);
  const again = await get(`${cache.url}/v2/up/lib/app/manifests/b`);
  t.equal(again.status, 200, 'the next pull fetches it again');
  t.ok(again.body.equals(b.manifest));
  t.equal(manifestGets(fw), gets + 1, 'from the upstream');
});

t.test('a hostile upstream: bad redirects and a redirect target asking for credentials get errors, never a 500 or our password', async (t) => {
  const http = await import('node:http');
  const { writeFileSync } = await import('node:fs');
  const { tempDir } = await import('../helpers/server');
  const seen: { host: string; authorization?: string; url: string }[] = [];
  const listen = async (handler: (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void) => {
    const server = http.createServer((req, res) => {
      seen.push({ host: req.headers.host ?? '', authorization: req.headers.authorization, url: req.url ?? '' });
      handler(req, res);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.teardown(() => void server.close());
    return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  };
  // Another host: a CDN-like target that asks for a token from a realm of its choosing.
  const evil = await listen((req, res) => {
    if (req.url?.startsWith('/token')) return void res.writeHead(200, { 'content-type': 'application/json' }).end('{"token":"x"}');
    res.writeHead(401, { 'www-authenticate': `Bearer realm="http://${req.headers.host}/token",service="evil"` }).end();
  });
  const digest = `sha256:${'a'.repeat(64)}`;
  const upstream = await listen((req, res) => {
    if (req.url === '/v2/') return void res.writeHead(200).end('{}');
    if (req.url?.includes('/bad/')) return void res.writeHead(302, { location: 'http://[bad' }).end();
    res.writeHead(302, { location: `${evil}/blob` }).end();
  });
  const passwordFile = path.join(tempDir(t), 'password');
  writeFileSync(passwordFile, 's3cret\n');
  const cache = await startRegistry(t, { proxy: { upstreams: [{ prefix: 'up/', url: upstream, username: 'bob', passwordFile, timeout: 2 }] as never } });

  const bad = await get(`${cache.url}/v2/up/lib/bad/blobs/${digest}`);
  t.not(bad.status, 500, `an invalid Location: ${bad.status}, not 500`);
  t.ok(bad.status >= 400, 'an error');
  const lured = await get(`${cache.url}/v2/up/lib/app/blobs/${digest}`);
  t.not(lured.status, 500, `a 401 from the redirect target: ${lured.status}, not 500`);
  t.ok(lured.status >= 400, 'an error');
  t.notOk(seen.some((s) => s.url.startsWith('/token')), 'no token was asked from a realm the redirect target named');
  t.notOk(seen.some((s) => s.host !== new URL(upstream).host && s.authorization), 'no credentials went to another host');
});
