import t from 'tap';
import { RetentionIndex } from '../../src/index/retention-index';
import { forEachIndex } from '../helpers/index-db';
import { digestOf, manifest, R, W } from '../helpers/index-rows';

// The retention index on both implementations (SQLite, PostgreSQL): tags with push and pull times, the
// removal of tags with the manifests only they reached (and its dry run), and batches of pulls.

forEachIndex(t, 'tagged repositories in byte order, a page at a time; tags with push and pull times', async (t, db) => {
  const retention = new RetentionIndex(db);
  const m1 = await manifest(db, 'b', 1, 0);
  for (const repo of ['b', 'a/x', 'B']) await db.run(W.tag, repo, 'latest', m1, 100);
  await db.run(W.tag, 'b', 'v1', m1, 200);
  t.same(await retention.taggedRepositories('', 2), ['B', 'a/x']);
  t.same(await retention.taggedRepositories('a/x', 2), ['b'], 'one row per repository, however many tags');
  t.same(await retention.taggedRepositories('b', 2), []);

  const sort = <T extends { tag: string }>(rows: T[]) => rows.sort((x, y) => (x.tag < y.tag ? -1 : 1));
  t.same(sort(await retention.tags('b')), [
    { tag: 'latest', digest: m1, pushedAt: 100, pulledAt: null },
    { tag: 'v1', digest: m1, pushedAt: 200, pulledAt: null },
  ]);
  t.same(await retention.tags('a/x'), [{ tag: 'latest', digest: m1, pushedAt: 100, pulledAt: null }], 'a tag of a manifest not in the repository');
  t.same(await retention.tags('none'), []);
});

forEachIndex(t, 'pulls: the latest of a batch is kept, of the manifest and of the tag, and never moves back', async (t, db) => {
  const retention = new RetentionIndex(db);
  const m1 = await manifest(db, 'r', 1, 0);
  const m2 = await manifest(db, 'r', 2, 0);
  await db.run(W.tag, 'r', 'a', m1, 10);
  await db.run(W.tag, 'r', 'b', m2, 10);
  await retention.recordPulls([]);
  await retention.recordPulls([
    { repo: 'r', digest: m1, tag: 'a', at: 500 },
    { repo: 'r', digest: m1, at: 700 }, // by digest: the manifest's time, which the tag's reading takes too
    { repo: 'r', digest: m2, tag: 'b', at: 300 },
    { repo: 'r', digest: m2, tag: 'b', at: 400 },
    { repo: 'r', digest: m1, tag: 'b', at: 900 }, // the tag no longer names m1: only the manifest counts it
    { repo: 'gone', digest: m1, tag: 'a', at: 999 },
  ]);
  const pulled = async () => Object.fromEntries((await retention.tags('r')).map((s) => [s.tag, s.pulledAt]));
  t.same(await pulled(), { a: 900, b: 400 });
  await retention.recordPulls([
    { repo: 'r', digest: m2, tag: 'b', at: 350 },
    { repo: 'r', digest: m1, at: 100 },
  ]);
  t.same(await pulled(), { a: 900, b: 400 }, 'an older pull written late changes nothing');
  await retention.recordPulls([{ repo: 'r', digest: m2, tag: 'b', at: 1000 }]);
  t.same(await pulled(), { a: 900, b: 1000 });
});

forEachIndex(t, 'removing tags removes the manifests only they reached; a dry run measures the same and keeps all', async (t, db) => {
  const retention = new RetentionIndex(db);
  const repo = 'team/app';
  // old -> index 1 (children 2, 3; 2 has a referrer 4); new -> 5; 3 is also a child of 5 (shared).
  for (let n = 1; n <= 5; n++) await manifest(db, repo, n, 0, n === 4 ? 2 : null);
  await db.run(W.ref, repo, digestOf(1), digestOf(2));
  await db.run(W.ref, repo, digestOf(1), digestOf(3));
  await db.run(W.ref, repo, digestOf(5), digestOf(3));
  await db.run(W.ref, repo, digestOf(2), digestOf(20)); // a layer of manifest 2
  await db.run(W.ref, repo, digestOf(2), digestOf(21)); // a layer that a v1 image uses too
  await db.run(W.ref, repo, digestOf(2), digestOf(22)); // a layer that another repository's manifest names
  await db.run(W.ref, 'other', digestOf(9), digestOf(22));
  await db.run(W.v1image, 'v1repo', 'img', digestOf(21), null);
  for (const [n, size] of [[1, 1], [2, 2], [4, 4], [20, 2000], [21, 2100], [22, 2200]] as const) await db.run(W.blob, digestOf(n), size, `l${n}`, 0);
  await db.run(W.link, repo, digestOf(2), 0);
  await db.run(W.link, repo, digestOf(5), 0);
  await db.run(W.tag, repo, 'old', digestOf(1), 100);
  await db.run(W.tag, repo, 'new', digestOf(5), 200);

  const going = [
    { tag: 'old', digest: digestOf(1), pushedAt: 100 },
    { tag: 'new', digest: digestOf(5), pushedAt: 199 }, // pushed again since the decision: stays
    { tag: 'gone', digest: digestOf(1), pushedAt: 100 }, // no such tag
  ];
  const expected = {
    tags: [going[0]],
    manifests: [1, 2, 4].map(digestOf),
    bytes: 1 + 2 + 4 + 2000, // manifests 1, 2, 4 and layer 20; not 21 (v1 image) nor 22 (named elsewhere)
  };
  const dry = await retention.removeTags(repo, going, true);
  t.same({ ...dry, manifests: [...dry.manifests].sort() }, expected, 'the dry run measures');
  t.same(await db.all(R.tags, repo), ['new', 'old'], 'and changes nothing');
  t.equal((await db.all(R.manifests, repo)).length, 5);

  const real = await retention.removeTags(repo, going, false);
  t.same({ ...real, manifests: [...real.manifests].sort() }, expected, 'the real run removes what the dry run listed');
  t.same(await db.all(R.tags, repo), ['new']);
  t.same(await db.all(R.manifests, repo), [3, 5].map(digestOf), 'the shared child stays with the kept tag');
  t.equal(await db.get(R.refs, repo), 1, "the removed manifests' references went with them");
  t.same(await db.all(R.links, repo), [digestOf(5)], 'and their links');
  t.same(await retention.removeTags(repo, [], false), { tags: [], manifests: [], bytes: 0 }, 'nothing to remove');
});

forEachIndex(t, 'bound to a transaction, a removal rolls back with it', async (t, db) => {
  const retention = new RetentionIndex(db);
  await manifest(db, 'r', 1, 0);
  await db.run(W.tag, 'r', 'a', digestOf(1), 1);
  await t.rejects(
    db.transaction(async (tx) => {
      t.same((await tx(retention).removeTags('r', [{ tag: 'a', digest: digestOf(1), pushedAt: 1 }], false)).manifests, [digestOf(1)]);
      throw new Error('undo');
    }),
    /undo/,
  );
  t.same(await db.all(R.tags, 'r'), ['a']);
  t.same(await db.all(R.manifests, 'r'), [digestOf(1)]);
});
