import { randomBytes } from 'node:crypto';
import t from 'tap';
import { parseByteSize } from '../../src/bytes';
import { parseConfig } from '../../src/config/load';
import { startRegistry } from '../helpers/server';
import { imageChain, pushV1 } from '../helpers/v1';
import { blobOf, buildImage, pushBlob, pushImage, pullsWhole, putManifest, type Blob } from '../helpers/v2';

// Quotas over HTTP: refused before the bytes are read when the size is announced, at the commit otherwise,
// never linked when refused, exact under concurrent pushes, and lowered again by deletion plus GC.

t.test('sizes and quota configuration: bad values stop the start naming the key', async (t) => {
  t.equal(parseByteSize(1234), 1234);
  t.equal(parseByteSize('10GiB'), 10 * 1024 ** 3);
  t.equal(parseByteSize('500 MB'), 500e6);
  t.equal(parseByteSize('1.5k'), 1536);
  t.throws(() => parseByteSize(-1), /at least 0/);
  t.throws(() => parseByteSize('-5GiB'), /expected a size/);
  t.throws(() => parseByteSize('ten'), /expected a size/);

  const cfg = (yaml: string) => () => parseConfig(yaml, {});
  t.same(parseConfig('quotas:\n  - {repository: "team-a/**", limit: 10GiB}\n', {}).quotas, [{ repository: 'team-a/**', limit: 10 * 1024 ** 3 }]);
  t.throws(cfg('quotas:\n  - {repository: "a/**", limit: -3}\n'), /quotas\[0\]\.limit: expected a whole number of bytes, at least 0/);
  t.throws(cfg('quotas:\n  - {repository: "a/**", limit: 1GiB, per: repo}\n'), /unknown configuration key "quotas\[0\]\.per"/);
  t.throws(cfg('quotas:\n  - {repository: "Team A/**", limit: 1GiB}\n'), /quotas\[0\]\.repository: "T" cannot appear in a repository glob/);
  t.throws(cfg('quotas:\n  - {repository: "a/***", limit: 1GiB}\n'), /quotas\[0\]\.repository: "\*\*\*" is not a glob/);
  t.throws(cfg('quotas:\n  - {repository: "$user/**", limit: 1GiB}\n'), /\$user has no meaning here/);
  t.throws(cfg('quotas:\n  - {repository: "a/**"}\n'), /quotas\[0\]\.limit: required/);
  t.throws(() => parseConfig('quotas: []\n', { REGISTRY_QUOTAS: '[{"repository": "a//b", "limit": 1}]' }), /REGISTRY_QUOTAS.*empty path component/);
});

const denied = async (res: Response, quota: string) => {
  const body = (await res.json()) as { errors: { code: string; message: string }[] };
  return res.status === 403 && body.errors[0]?.code === 'DENIED' && body.errors[0].message.startsWith(`quota exceeded for ${quota}: `) ? body.errors[0].message : undefined;
};

const linked = async (url: string, repo: string, b: Blob) => (await fetch(`${url}/v2/${repo}/blobs/${b.digest}`, { method: 'HEAD' })).status === 200;

/** A PATCH whose body streams without Content-Length (chunked), then the final PUT. */
async function pushChunked(url: string, repo: string, b: Blob): Promise<Response> {
  const start = await fetch(`${url}/v2/${repo}/blobs/uploads/`, { method: 'POST' });
  const loc = new URL(start.headers.get('location')!, url);
  const stream = new ReadableStream({
    start(c) {
      c.enqueue(b.data);
      c.close();
    },
  });
  const patch = await fetch(loc, { method: 'PATCH', body: stream, duplex: 'half' } as RequestInit);
  if (patch.status !== 202) throw new Error(`PATCH ${patch.status}`);
  const fin = new URL(patch.headers.get('location')!, url);
  fin.searchParams.set('digest', b.digest);
  return fetch(fin, { method: 'PUT' });
}

t.test('pushes up to the limit pass; the one that crosses it is DENIED and leaves nothing visible', async (t) => {
  const reg = await startRegistry(t, { quotas: [{ repository: 'q/**', limit: 10_000 }, { repository: 'q/small', limit: 3_000 }] });
  const used = async () => (await reg.app.registry.quotas.status())[0]!.used;
  const a = blobOf(randomBytes(4000));
  const b = blobOf(randomBytes(4000));
  await pushBlob(reg.url, 'q/a', a);
  await pushBlob(reg.url, 'q/b', b);
  t.equal(await used(), 8000, 'the namespace uses both');

  // Announced size: refused before a byte is read.
  const c = blobOf(randomBytes(3000));
  const mono = await fetch(`${reg.url}/v2/q/a/blobs/uploads/?digest=${c.digest}`, { method: 'POST', body: c.data });
  const message = await denied(mono, 'q/**');
  t.equal(message, 'quota exceeded for q/**: 7.8 KiB of 9.8 KiB used', 'the message names the quota, the use and the limit');
  t.notOk(await linked(reg.url, 'q/a', c), 'not linked');
  const start = await fetch(`${reg.url}/v2/q/a/blobs/uploads/`, { method: 'POST' });
  const put = new URL(start.headers.get('location')!, reg.url);
  put.searchParams.set('digest', c.digest);
  t.ok(await denied(await fetch(put, { method: 'PUT', body: c.data }), 'q/**'), 'a PUT with the body is refused too');

  // Streamed without a length: the bytes are taken, the commit is refused, the blob is not linked.
  t.ok(await denied(await pushChunked(reg.url, 'q/a', c), 'q/**'), 'chunked upload refused at its final PUT');
  t.notOk(await linked(reg.url, 'q/a', c), 'not linked');
  t.equal(await used(), 8000, 'usage unchanged');

  // A blob the repository holds already costs nothing, even at the limit; a mount into another repository does.
  await pushBlob(reg.url, 'q/a', a);
  const mount = await fetch(`${reg.url}/v2/q/small/blobs/uploads/?mount=${a.digest}&from=q/a`, { method: 'POST' });
  t.ok(await denied(mount, 'q/**'), 'every quota covering the repository must hold: the first that does not is named');
  t.ok(await denied(await fetch(`${reg.url}/v2/q/c/blobs/uploads/?mount=${b.digest}&from=q/b`, { method: 'POST' }), 'q/**'), 'a mount counts for the repository it lands in');

  // Repositories outside every quota are not limited.
  await pushBlob(reg.url, 'free/x', blobOf(randomBytes(50_000)));
  t.pass('no quota outside q/**');
});

t.test('a manifest that would cross the limit is refused; its image stays unpushed', async (t) => {
  const reg = await startRegistry(t, { quotas: [{ repository: 'm/r', limit: 2_000 }] });
  const img = buildImage({ layers: 1, layerBytes: 100 });
  for (const blob of [img.config, ...img.layers]) await pushBlob(reg.url, 'm/r', blob);
  // Fill the quota to within a few bytes: the blobs fit, the manifest does not.
  const used = img.config.data.length + img.layers[0]!.data.length;
  await pushBlob(reg.url, 'm/r', blobOf(randomBytes(2_000 - used - 10)));
  t.ok(img.manifest.length > 10);
  const res = await putManifest(reg.url, 'm/r', 'v1', img.manifest, img.mediaType);
  t.ok(await denied(res, 'm/r'), 'manifest PUT refused');
  t.equal((await fetch(`${reg.url}/v2/m/r/manifests/v1`, { method: 'HEAD' })).status, 404, 'no tag, no manifest');
});

t.test('concurrent pushes never pass the limit together', async (t) => {
  const reg = await startRegistry(t, { quotas: [{ repository: 'race/**', limit: 10_500 }] });
  for (let round = 0; round < 5; round++) {
    const results = await Promise.all(
      Array.from({ length: 24 }, (_, i) =>
        i % 2 === 0
          ? pushBlob(reg.url, `race/r${round}/${i % 3}`, blobOf(randomBytes(1000))).then(() => true, () => false)
          : pushChunked(reg.url, `race/r${round}/${i % 3}`, blobOf(randomBytes(1000))).then((r) => r.status === 201),
      ),
    );
    const stored = results.filter(Boolean).length;
    t.equal(stored, 10, `round ${round}: exactly as many as fit`);
    // The next round starts from an empty namespace: delete what this one stored.
    for (let i = 0; i < 3; i++) await fetch(`${reg.url}/v2/_registry/repositories/race/r${round}/${i}`, { method: 'DELETE' });
  }
});

t.test('deleting and collecting lowers the usage; the refused push then fits', async (t) => {
  const reg = await startRegistry(t, { quotas: [{ repository: 'g/**', limit: 20_000 }], gc: { delay: 0, interval: 0, untagged: 'delete' } });
  const first = buildImage({ layers: 2, layerBytes: 6_000 });
  await pushImage(reg.url, 'g/app', 'one', first);
  const second = buildImage({ layers: 2, layerBytes: 6_000 });
  await t.rejects(pushImage(reg.url, 'g/app', 'two', second), /403.*quota exceeded for g\/\*\*/);
  t.equal((await fetch(`${reg.url}/v2/g/app/manifests/one`, { method: 'DELETE' })).status, 202);
  await reg.app.registry.gc.run();
  await pushImage(reg.url, 'g/app', 'two', second);
  t.ok(await pullsWhole(reg.url, 'g/app', 'two', second), 'the second image pulls whole');
});

t.test('v1 pushes are counted and refused too, with a v1 error body', async (t) => {
  const reg = await startRegistry(t, { quotas: [{ repository: 'v1ns/**', limit: 30_000 }] });
  await pushV1(reg.url, 'v1ns/app', 'one', imageChain(2, { layerBytes: 10_000 }));
  const used = (await reg.app.registry.quotas.status())[0]!.used;
  t.ok(used > 20_000 && used < 30_000, `the first chain is counted (${used} bytes)`);
  const err = await pushV1(reg.url, 'v1ns/app', 'two', imageChain(2, { layerBytes: 10_000 })).then(() => undefined, (e: Error) => e.message);
  t.match(err, /^PUT layer [0-9a-f]+: 403 \{"error":"quota exceeded for v1ns\/\*\*: .* of 29 KiB used"\}$/, 'the layer that crosses it is refused');
  t.ok((await reg.app.registry.quotas.status())[0]!.used <= 30_000, 'nothing beyond the limit');
});
