import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { databaseBehind, indexRows } from '../helpers/index-db';
import { GcIndex } from '../../src/index/gc-index';
import { MetadataIndex } from '../../src/index/metadata-index';
import { startRegistry, type TestRegistry } from '../helpers/server';
import { blobOf, buildImage, pullsWhole, pushBlob, pushImage, sha256, withLayers, type BuiltImage } from '../helpers/v2';

// Garbage collection in the running server, against its real index and storage (local, or S3 under
// TEST_STORAGE=s3): what it frees, what it keeps, and that a push racing it never loses.

const local = process.env.TEST_STORAGE !== 's3';

function blobFiles(reg: TestRegistry): string[] {
  const top = path.join(reg.dir, 'blobs', 'blobs', 'sha256');
  if (!existsSync(top)) return [];
  return readdirSync(top).flatMap((d) => readdirSync(path.join(top, d)).map((f) => `sha256:${f}`));
}

async function status(url: string, method = 'GET'): Promise<number> {
  const res = await fetch(url, { method });
  await res.arrayBuffer();
  return res.status;
}


const now = { gc: { delay: 0, interval: 0 } } as const;

t.test('frees exactly what nothing refers to: a deleted manifest, its own blobs, not the shared ones', async (t) => {
  const reg = await startRegistry(t, now);
  const a = buildImage({ layers: 2 });
  const b = buildImage({ layers: 1 });
  const shared = a.layers[0]!;
  const bImage = withLayers(b, [shared, ...b.layers]);
  await pushImage(reg.url, 'team/a', 'v1', a);
  await pushImage(reg.url, 'team/b', 'v1', bImage);

  const before = await reg.app.registry.gc.run();
  t.same([before.blobs, before.links, before.manifests], [0, 0, 0], 'nothing to collect while everything is tagged');

  t.equal(await status(`${reg.url}/v2/team/b/manifests/${bImage.manifestDigest}`, 'DELETE'), 202);
  const report = await reg.app.registry.gc.run();
  const gone = [b.config.digest, b.layers[0]!.digest, bImage.manifestDigest];
  t.equal(report.blobs, 3, "b's manifest, config and own layer");
  t.equal(report.bytes, b.config.data.length + b.layers[0]!.data.length + bImage.manifest.length);
  if (local) {
    const files = blobFiles(reg);
    for (const d of gone) t.notOk(files.includes(d), `${d.slice(0, 19)} gone from disk`);
    t.ok(files.includes(shared.digest), 'the shared layer stays');
  }
  t.ok(await pullsWhole(reg.url, 'team/a', 'v1', a), 'a still pulls byte for byte');
  t.equal(await status(`${reg.url}/v2/team/b/blobs/${shared.digest}`), 404, 'b no longer serves the shared layer');
  t.same((await reg.app.registry.gc.run()).blobs, 0, 'a second run finds nothing');
});

t.test('gc.delay keeps what is younger: blobs pushed for a manifest that has not come yet', async (t) => {
  const reg = await startRegistry(t, { gc: { delay: 3600, interval: 0 } });
  const lonely = blobOf(randomBytes(1000));
  await pushBlob(reg.url, 'team/a', lonely);
  const report = await reg.app.registry.gc.run();
  t.same([report.links, report.blobs], [0, 0], 'kept for an hour');
  t.equal(await status(`${reg.url}/v2/team/a/blobs/${lonely.digest}`), 200);

  const eager = await startRegistry(t, now);
  await pushBlob(eager.url, 'team/a', lonely);
  const r2 = await eager.app.registry.gc.run();
  t.same([r2.links, r2.blobs], [1, 1], 'with gc.delay 0: unlinked and freed at once');
  t.equal(await status(`${eager.url}/v2/team/a/blobs/${lonely.digest}`), 404);
});

t.test('gc.untagged: keep leaves untagged manifests; delete removes them, but never children of a tagged index or referrers', async (t) => {
  for (const untagged of ['keep', 'delete'] as const) {
    const reg = await startRegistry(t, { gc: { delay: 0, interval: 0, untagged } });
    const img = buildImage();
    await pushImage(reg.url, 'r/x', 'old', img);
    const sig = buildImage({ layers: 1, subject: { digest: img.manifestDigest, size: img.manifest.length, mediaType: img.mediaType }, artifactType: 'application/example.sig' });
    const kept = buildImage();
    await pushImage(reg.url, 'r/x', 'kept', kept);
    await pushImage(reg.url, 'r/x', sig.manifestDigest, sig);
    const sigOfKept = buildImage({ layers: 1, subject: { digest: kept.manifestDigest, size: kept.manifest.length, mediaType: kept.mediaType } });
    await pushImage(reg.url, 'r/x', sigOfKept.manifestDigest, sigOfKept);
    t.equal(await status(`${reg.url}/v2/r/x/manifests/old`, 'DELETE'), 202, 'untag old');
    const report = await reg.app.registry.gc.run();
    if (untagged === 'keep') {
      t.same([report.manifests, report.blobs], [0, 0], 'keep: nothing goes');
      t.equal(await status(`${reg.url}/v2/r/x/manifests/${img.manifestDigest}`), 200);
    } else {
      t.equal(report.manifests, 2, 'delete: the untagged image and its signature (its subject is gone)');
      t.equal(report.blobs, 2 * 2 + img.layers.length + sig.layers.length, 'and their blobs: two manifests, two configs, the layers');
      t.equal(await status(`${reg.url}/v2/r/x/manifests/${img.manifestDigest}`), 404);
      t.equal(await status(`${reg.url}/v2/r/x/manifests/${sigOfKept.manifestDigest}`), 200, "the kept image's referrer stays");
    }
    t.ok(await pullsWhole(reg.url, 'r/x', 'kept', kept));
  }
});

t.test('the children of a tagged index stay with delete', async (t) => {
  const reg = await startRegistry(t, { gc: { delay: 0, interval: 0, untagged: 'delete' } });
  const amd = buildImage({ arch: 'amd64' });
  const arm = buildImage({ arch: 'arm64' });
  await pushImage(reg.url, 'r/multi', amd.manifestDigest, amd);
  await pushImage(reg.url, 'r/multi', arm.manifestDigest, arm);
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [amd, arm].map((m, i) => ({ mediaType: m.mediaType, digest: m.manifestDigest, size: m.manifest.length, platform: { os: 'linux', architecture: ['amd64', 'arm64'][i] } })),
    }),
  );
  const put = await fetch(`${reg.url}/v2/r/multi/manifests/latest`, { method: 'PUT', body: index, headers: { 'content-type': 'application/vnd.oci.image.index.v1+json' } });
  t.equal(put.status, 201);
  const report = await reg.app.registry.gc.run();
  t.same([report.manifests, report.blobs], [0, 0]);
  t.ok(await pullsWhole(reg.url, 'r/multi', amd.manifestDigest, amd));
  t.ok(await pullsWhole(reg.url, 'r/multi', arm.manifestDigest, arm));
});

t.test('v1 images keep their JSON and layers', async (t) => {
  const reg = await startRegistry(t, now);
  const { imageChain, pushV1 } = await import('../helpers/v1');
  await pushV1(reg.url, 'ns/old', 'latest', imageChain(2), { authorization: 'Token signature=unsigned,repository="ns/old",access=write' });
  // The v1 -> v2 bridge stores a config blob and then its manifest in the background: with gc.delay 0 a
  // collection in between takes the config (a push has gc.delay to name what it stored); settled here.
  await reg.app.registry.bridge?.settle();
  const report = await reg.app.registry.gc.run();
  t.equal(report.blobs, 0, 'nothing of a v1 image is collected');
});

t.test('a manifest PUT racing the collection of its blobs: either the PUT fails or the blobs stay', async (t) => {
  const reg = await startRegistry(t, now);
  const gc = reg.app.registry.gc;
  let failed = 0;
  let kept = 0;
  const pushed: { repo: string; tag: string; image: BuiltImage }[] = [];
  const shared = buildImage({ layers: 2 });
  for (let round = 0; round < 30; round++) {
    // Each round reuses the shared blobs (already stored, unlinked again by the previous round's collection)
    // and adds one new layer, while collections run back to back.
    const image = buildImage({ layers: 1 });
    const candidate = withLayers(image, [...shared.layers, ...image.layers]);
    const repo = `race/r${round % 3}`;
    const push = pushImage(reg.url, repo, `t${round}`, candidate).then(
      () => pushed.push({ repo, tag: `t${round}`, image: candidate }),
      (err: Error) => {
        if (!/MANIFEST_BLOB_UNKNOWN|BLOB_UNKNOWN|PUT manifest: 400/.test(err.message)) throw err;
        failed++;
      },
    );
    await Promise.all([push, gc.run(), gc.run().then(() => gc.run())]);
    kept++;
  }
  t.equal(kept, 30);
  t.ok(pushed.length > 0, `${pushed.length} pushes acknowledged, ${failed} refused while their blobs were collected`);
  await gc.run();
  for (const p of pushed) t.ok(await pullsWhole(reg.url, p.repo, p.tag, p.image), `${p.repo}:${p.tag} pulls whole after the race`);
});

t.test('a run killed after taking blobs out of the index is finished at the next start; a push of that digest meanwhile waits', async (t) => {
  const reg = await startRegistry(t, now);
  const blob = blobOf(randomBytes(4096));
  await pushBlob(reg.url, 'team/k', blob);
  t.equal(await status(`${reg.url}/v2/team/k/blobs/${blob.digest}`, 'DELETE'), 202);
  // The first half of a sweep, as a run that is then killed leaves it.
  const { db } = internals(reg);
  const doomed = await new GcIndex(db).doomUnreferenced('', Date.now());
  t.same(doomed.doomed.map((b) => b.digest), [blob.digest]);
  const again = await reg.restart();
  t.equal(await status(`${again.url}/v2/team/k/blobs/${blob.digest}`), 404);
  if (local) t.notOk(blobFiles(again).includes(blob.digest), 'its bytes were deleted at start');
  await pushBlob(again.url, 'team/k', blob);
  t.equal(await status(`${again.url}/v2/team/k/blobs/${blob.digest}`), 200, 'pushed again, it is served');
});

t.test('storage nobody recorded: staged areas without an upload, committed objects without a row', async (t) => {
  const reg = await startRegistry(t, now);
  const driver = reg.app.registry.blobs.driver;
  // Through the driver itself, so the same test holds for local files and S3 objects: bytes committed
  // (moved into place) by a process killed before the index knew, and a staging area no upload names.
  const data = randomBytes(3000);
  const committed = await driver.appendUpload('stray-upload', await driver.startUpload('stray-upload'), 0, Readable.from([data]));
  const key = await driver.commitUpload('stray-upload', committed, data.length, sha256(data).slice(7));
  await driver.appendUpload('orphan-upload', await driver.startUpload('orphan-upload'), 0, Readable.from([randomBytes(100)]));
  const image = buildImage({ layers: 1 });
  await pushImage(reg.url, 'team/s', 'v1', image);
  const live = image.layers[0]!;
  await new Promise((r) => setTimeout(r, 1100)); // S3 keeps modification times in whole seconds
  const report = await reg.app.registry.gc.run();
  t.same([report.stray, report.strayBytes], [1, 3000], 'the committed object nobody recorded');
  t.equal(await driver.stat(key), null, 'is gone from storage');
  // S3 cannot list multipart uploads everywhere: there a bucket lifecycle rule removes those.
  t.equal(report.staged, driver.listStaged ? 1 : 0, 'the staging area no upload names');
  if (local) t.notOk(existsSync(path.join(reg.dir, 'blobs', 'uploads', 'orphan-upload')));
  t.equal(await status(`${reg.url}/v2/team/s/blobs/${live.digest}`), 200, 'what is recorded stays');
  t.ok(await pullsWhole(reg.url, 'team/s', 'v1', image));
});

function internals(reg: TestRegistry) {
  const index = reg.app.registry.index;
  return { index, db: databaseBehind(index), rows: indexRows(index) };
}

t.test('a push of a digest whose older copy is being deleted never loses its bytes to that deletion', async (t) => {
  const reg = await startRegistry(t, now);
  const blob = blobOf(randomBytes(4096));
  await pushBlob(reg.url, 'team/w', blob);
  t.equal(await status(`${reg.url}/v2/team/w/blobs/${blob.digest}`, 'DELETE'), 202);
  const { db } = internals(reg);
  const gcIndex = new GcIndex(db);
  const { doomed } = await gcIndex.doomUnreferenced('', Date.now()); // taken out of the index, bytes not yet deleted
  t.same(doomed.map((b) => b.digest), [blob.digest]);
  let pushed = false;
  const push = pushBlob(reg.url, 'team/w', blob).then(() => (pushed = true));
  await new Promise((r) => setTimeout(r, 300));
  // Local blobs live at their digest's path, which the deletion is about to remove: the commit waits. S3
  // commits each upload to a key of its own, which the deletion never names: nothing to wait for.
  const sharedLocation = reg.app.registry.blobs.driver.stagedDigest !== undefined;
  t.equal(pushed, !sharedLocation, sharedLocation ? 'the commit waits while the digest is doomed' : 'the commit goes on');
  await reg.app.registry.blobs.driver.delete(doomed[0]!.location); // the collection deletes the old bytes...
  await gcIndex.forgetDoomed([doomed[0]!.digest]); // ...and lets the digest go
  await push;
  const got = await fetch(`${reg.url}/v2/team/w/blobs/${blob.digest}`);
  t.equal(got.status, 200);
  t.ok(Buffer.from(await got.arrayBuffer()).equals(blob.data), 'the new copy is whole: the deletion did not take it');
});

/** A monolithic POST ?digest= whose body the caller writes: the request stays open until end(). */
function slowMonolithicPost(reg: TestRegistry, repo: string, digest: string) {
  const req = http.request(`${reg.url}/v2/${repo}/blobs/uploads/?digest=${digest}`, {
    method: 'POST',
    headers: { 'content-type': 'application/octet-stream' },
  });
  const answer = new Promise<number>((resolve, reject) => {
    req.on('response', (res) => res.resume().on('end', () => resolve(res.statusCode!)));
    req.on('error', reject);
  });
  return { write: (b: Buffer) => req.write(b), end: (b?: Buffer) => (req.end(b), answer) };
}

t.test('a one-shot push (POST ?digest=) of a digest whose older copy is being deleted waits as a two-request push does', async (t) => {
  const reg = await startRegistry(t, now);
  const blob = blobOf(randomBytes(4096));
  await pushBlob(reg.url, 'team/w', blob);
  t.equal(await status(`${reg.url}/v2/team/w/blobs/${blob.digest}`, 'DELETE'), 202);
  const gcIndex = new GcIndex(internals(reg).db);
  const { doomed } = await gcIndex.doomUnreferenced('', Date.now());
  t.same(doomed.map((b) => b.digest), [blob.digest]);
  let done: number | undefined;
  const push = slowMonolithicPost(reg, 'team/w', blob.digest).end(blob.data).then((s) => (done = s));
  await new Promise((r) => setTimeout(r, 300));
  const sharedLocation = reg.app.registry.blobs.driver.stagedDigest !== undefined;
  t.equal(done === undefined, sharedLocation, sharedLocation ? 'the commit waits while the digest is doomed' : 'the commit goes on');
  await reg.app.registry.blobs.driver.delete(doomed[0]!.location);
  await gcIndex.forgetDoomed([doomed[0]!.digest]);
  t.equal(await push, 201);
  const got = await fetch(`${reg.url}/v2/team/w/blobs/${blob.digest}`);
  t.ok(Buffer.from(await got.arrayBuffer()).equals(blob.data), 'the new copy is whole');
});

t.test('a one-shot push records its announced digest with its row: a collection meanwhile leaves that digest alone, and the commit records no more', async (t) => {
  const reg = await startRegistry(t, now);
  if (!reg.app.registry.blobs.driver.stagedDigest) {
    t.pass('S3 commits each upload to a key of its own: no digest to record before a move');
    return;
  }
  const blob = blobOf(randomBytes(64 * 1024));
  await pushBlob(reg.url, 'team/o', blob);
  t.equal(await status(`${reg.url}/v2/team/o/blobs/${blob.digest}`, 'DELETE'), 202, 'the stored copy is referenced by nothing');
  const { db, rows } = internals(reg);
  const slow = slowMonolithicPost(reg, 'team/p', blob.digest);
  slow.write(blob.data.subarray(0, 1024));
  let row: unknown;
  for (let i = 0; i < 200 && !row; i++) {
    row = (await rows.all('SELECT digest FROM uploads WHERE repo IS NULL')).find((r) => (r as { digest: string | null }).digest === blob.digest);
    if (!row) await new Promise((r) => setTimeout(r, 10));
  }
  t.ok(row, 'the one-shot row names the announced digest while the bytes stream');
  const { doomed } = await new GcIndex(db).doomUnreferenced('', Date.now());
  t.same(doomed, [], 'a collection now leaves the unreferenced copy of that digest alone');
  t.equal(await slow.end(blob.data.subarray(1024)), 201);
  const got = await fetch(`${reg.url}/v2/team/p/blobs/${blob.digest}`);
  t.ok(Buffer.from(await got.arrayBuffer()).equals(blob.data), 'the blob is served whole');

  // A digest not stored yet: its bytes are moved into place, with no second write of the digest.
  const recorded = MetadataIndex.prototype.setUploadDigest;
  let digestWrites = 0;
  MetadataIndex.prototype.setUploadDigest = function (...a) {
    digestWrites++;
    return recorded.apply(this, a);
  };
  t.teardown(() => void (MetadataIndex.prototype.setUploadDigest = recorded));
  const fresh = blobOf(randomBytes(8192));
  t.equal(await slowMonolithicPost(reg, 'team/p', fresh.digest).end(fresh.data), 201);
  MetadataIndex.prototype.setUploadDigest = recorded;
  t.equal(digestWrites, 0, 'the commit of a new blob did not record its digest a second time');
  const fetched = await fetch(`${reg.url}/v2/team/p/blobs/${fresh.digest}`);
  t.ok(Buffer.from(await fetched.arrayBuffer()).equals(fresh.data), 'and it is served whole');
});

t.test('a HEAD of a blob renews its link, so a push that found it there can still name it after gc.delay', async (t) => {
  const reg = await startRegistry(t, { gc: { delay: 3600, interval: 0 } });
  const blob = blobOf(randomBytes(1000));
  await pushBlob(reg.url, 'team/h', blob);
  const { rows } = internals(reg);
  const age = () => rows.run('UPDATE repo_blobs SET linked_at = ? WHERE repo = ? AND digest = ?', Date.now() - 2 * 3600_000, 'team/h', blob.digest);
  await age(); // linked two hours ago, named by no manifest
  t.equal(await status(`${reg.url}/v2/team/h/blobs/${blob.digest}`, 'HEAD'), 200, 'a client finds it and skips its upload');
  t.same([(await reg.app.registry.gc.run()).links, await status(`${reg.url}/v2/team/h/blobs/${blob.digest}`, 'HEAD')], [0, 200], 'kept');
  await age();
  await rows.run('UPDATE blobs SET created_at = ? WHERE digest = ?', Date.now() - 2 * 3600_000, blob.digest);
  const report = await reg.app.registry.gc.run();
  t.same([report.links, report.blobs], [1, 1], 'not renewed: unlinked and freed');
});
