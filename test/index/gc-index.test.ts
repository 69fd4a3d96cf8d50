import t from 'tap';
import { GcIndex } from '../../src/index/gc-index';
import { forEachIndex } from '../helpers/index-db';
import { digestOf, manifest, R, W } from '../helpers/index-rows';

// The garbage collection index on both implementations (SQLite, PostgreSQL): the lock, the mark queries
// (unreachable manifests, unused links, unreferenced blobs) and the doomed list.

const OLD = 1_000;
const YOUNG = 9_000;
const CUTOFF = 5_000;

forEachIndex(t, 'the collection lock: taken, held against the living, taken over from the stale and the gone', async (t, db) => {
  const gc = new GcIndex(db);
  const a = { host: 'h1', pid: 10 };
  const b = { host: 'h2', pid: 20 };
  const now = Date.now();
  t.equal(await gc.takeLock(a, now - 60_000, () => false), null, 'a free lock is taken');
  t.equal(await gc.takeLock(a, now - 60_000, () => false), null, 'its holder takes it again');
  t.same(await gc.takeLock(b, now - 60_000, () => false), a, 'a living holder keeps it');
  t.equal(await gc.heartbeat(a), true);
  const seen: unknown[] = [];
  t.equal(
    await gc.takeLock(b, now - 60_000, (h) => (seen.push(h), true)),
    null,
    'a holder said to be gone loses it',
  );
  t.match(seen, [a], 'isGone was asked about the holder');
  t.equal(await gc.heartbeat(a), false, 'the old holder learns it lost the lock');
  t.equal(await gc.heartbeat(b), true);
  t.equal(await gc.takeLock(a, Date.now() + 1, () => false), null, 'a holder silent since before staleBefore loses it');
  await gc.releaseLock(b);
  t.same(await gc.takeLock(b, now - 60_000, () => false), a, 'releasing a lock one does not hold changes nothing');
  await gc.releaseLock(a);
  t.equal(await gc.takeLock(b, now - 60_000, () => false), null, 'released, it is free');
});

forEachIndex(t, 'repositories are listed in byte order, a page at a time', async (t, db) => {
  const gc = new GcIndex(db);
  for (const name of ['b', 'a/x', 'B', 'a']) await db.run(W.repo, name);
  t.same(await gc.repositories('', 3), ['B', 'a', 'a/x']);
  t.same(await gc.repositories('a/x', 3), ['b']);
  t.same(await gc.repositories('b', 3), []);
});

forEachIndex(t, 'unreachable manifests: what no tag, kept index, kept subject or young manifest reaches', async (t, db) => {
  const gc = new GcIndex(db);
  const repo = 'team/app';
  await db.run(W.ref, 'other', digestOf(1), digestOf(99)); // another repository's rows are never looked at
  const index = await manifest(db, repo, 1, OLD);
  const child = await manifest(db, repo, 2, OLD);
  const grandchild = await manifest(db, repo, 3, OLD); // a child of a child (nested index)
  const signature = await manifest(db, repo, 4, OLD, 3); // a referrer of a kept manifest
  const sigOfSig = await manifest(db, repo, 5, OLD, 4); // ...and of that referrer
  await db.run(W.ref, repo, index, child);
  await db.run(W.ref, repo, child, grandchild);
  await db.run(W.tag, repo, 'v1', index, 0);
  const young = await manifest(db, repo, 6, YOUNG);
  const youngChild = await manifest(db, repo, 7, OLD);
  await db.run(W.ref, repo, young, youngChild);
  const orphan = await manifest(db, repo, 8, OLD);
  const orphanChild = await manifest(db, repo, 9, OLD);
  const orphanSig = await manifest(db, repo, 10, OLD, 8);
  await db.run(W.ref, repo, orphan, orphanChild);
  await db.run(W.link, repo, orphan, OLD);
  await db.run(W.link, repo, index, OLD);

  const first = await gc.deleteUnreachableManifests(repo, CUTOFF, 2);
  t.equal(first.length, 2, 'at most `limit` at a time');
  const rest = await gc.deleteUnreachableManifests(repo, CUTOFF, 100);
  t.same([...first, ...rest].sort(), [orphan, orphanChild, orphanSig]);
  t.same(await gc.deleteUnreachableManifests(repo, CUTOFF, 100), [], 'nothing is left to delete');
  t.same(await db.all(R.manifests, repo), [index, child, grandchild, signature, sigOfSig, young, youngChild].sort());
  t.equal(await db.get(R.refs, repo), 3, "the orphan's references went with it");
  t.same(await db.all(R.links, repo), [index], 'and its link');
  t.same(await db.all(R.tags, repo), ['v1']);
});

forEachIndex(t, 'unused links: old ones that no manifest of the repository is or names', async (t, db) => {
  const gc = new GcIndex(db);
  const repo = 'team/app';
  for (let n = 1; n <= 5; n++) await db.run(W.blob, digestOf(n), 1, `l${n}`, OLD);
  await manifest(db, repo, 1, OLD);
  await db.run(W.ref, repo, digestOf(1), digestOf(2));
  await db.run(W.ref, 'other', digestOf(9), digestOf(3)); // named in another repository only
  for (const [n, at] of [[1, OLD], [2, OLD], [3, OLD], [4, OLD], [5, YOUNG]] as const) await db.run(W.link, repo, digestOf(n), at);
  t.equal(await gc.removeUnusedLinks(repo, CUTOFF), 2);
  t.same(await db.all(R.links, repo), [digestOf(1), digestOf(2), digestOf(5)]);
  t.equal(await gc.removeUnusedLinks(repo, CUTOFF), 0);
});

forEachIndex(t, 'unreferenced blobs are doomed a window at a time, then forgotten', async (t, db) => {
  const gc = new GcIndex(db);
  for (let n = 1; n <= 8; n++) await db.run(W.blob, digestOf(n), n * 100, `loc/${n}`, n === 7 ? YOUNG : OLD);
  await db.run(W.link, 'r', digestOf(1), OLD);
  await db.run(W.v1image, 'r', 'img1', digestOf(2), null);
  await db.run(W.v1image, 'r', 'img2', digestOf(8), digestOf(3));
  await db.run(W.upload, 'u1', digestOf(4));
  // Left: 5 and 6 (old, unreferenced); 7 is young.
  const { doomed, next } = await gc.doomUnreferenced('', CUTOFF);
  t.same(doomed, [
    { digest: digestOf(5), location: 'loc/5', size: 500 },
    { digest: digestOf(6), location: 'loc/6', size: 600 },
  ]);
  t.equal(next, digestOf(8), 'the window ends at the last blob');
  t.same(await gc.doomUnreferenced(next!, CUTOFF), { doomed: [], next: null }, 'past the last blob: done');
  t.same(await db.all(R.blobs), [1, 2, 3, 4, 7, 8].map(digestOf), 'doomed blobs left the index');
  t.same(await gc.doomedBlobs(1), [doomed[0]]);
  t.same(await gc.doomedBlobs(Number.MAX_SAFE_INTEGER), doomed);
  t.same(await gc.doomUnreferenced(digestOf(4), CUTOFF), { doomed: [], next: digestOf(8) }, 'nothing doomed twice');
  await gc.forgetDoomed([digestOf(5)]);
  await gc.forgetDoomed([]);
  t.same(await gc.doomedBlobs(10), [doomed[1]]);
});

forEachIndex(t, 'a stray object is doomed unless a blob, a doomed blob or an upload holds it', async (t, db) => {
  const gc = new GcIndex(db);
  await db.run(W.blob, digestOf(1), 1, 'held/by-blob', OLD);
  await db.run(W.upload, 'up-1', digestOf(2));
  t.equal(await gc.uploadExists('up-1'), true);
  t.equal(await gc.uploadExists('up-2'), false);
  t.equal(await gc.doomStray('held/by-blob', 1, null, null), false, 'a blob lives there');
  t.equal(await gc.doomStray('some/key', 1, digestOf(2), null), false, 'an upload is moving bytes of that digest');
  t.equal(await gc.doomStray('some/key', 1, null, 'up-1'), false, 'the upload of that key is in flight');
  t.equal(await gc.doomStray('stray/3', 30, digestOf(3), 'up-2'), true, 'nothing holds it');
  t.equal(await gc.doomStray('stray/per-upload', 40, null, null), true, 'without a digest it is keyed by its key');
  t.equal(await gc.doomStray('stray/3', 30, null, null), false, 'a doomed object is in use');
  t.same(
    (await gc.doomedBlobs(10)).sort((a, b) => a.location.localeCompare(b.location)),
    [
      { digest: digestOf(3), location: 'stray/3', size: 30 },
      { digest: 'stray/per-upload', location: 'stray/per-upload', size: 40 },
    ],
  );
});

forEachIndex(t, 'bound to a transaction, its work commits or rolls back with it', async (t, db) => {
  const gc = new GcIndex(db);
  await db.run(W.blob, digestOf(1), 1, 'x', OLD);
  await t.rejects(
    db.transaction(async (tx) => {
      t.equal((await tx(gc).doomUnreferenced('', CUTOFF)).doomed.length, 1, 'a savepoint of the outer transaction');
      t.equal(await tx(gc).takeLock({ host: 'h', pid: 1 }, 0, () => false), null);
      throw new Error('undo');
    }),
    /undo/,
  );
  t.same(await db.all(R.blobs), [digestOf(1)], 'the blob is back');
  t.same(await gc.doomedBlobs(10), []);
  t.equal(await gc.heartbeat({ host: 'h', pid: 1 }), false, 'the lock was never taken');
});
