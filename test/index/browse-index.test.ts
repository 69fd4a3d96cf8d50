import t from 'tap';
import { BrowseIndex, type RepoCursor, type RepoRow, type RepoSort } from '../../src/index/browse-index';
import type { IndexDatabase } from '../../src/index/database';
import { MetadataIndex } from '../../src/index/metadata-index';
import type { NamePattern } from '../../src/index/name-filter';
import { sql } from '../../src/index/sql';
import { V1Index } from '../../src/index/v1-index';
import { forEachIndex } from '../helpers/index-db';

// The web UI's queries (BrowseIndex) on both implementations (SQLite, PostgreSQL). The v2 rows are written
// with plain statements (the same on both), so that each number below can be worked out by hand.

const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as const;
const idOf = (n: number) => n.toString(16).padStart(64, '0');

const W = {
  repo: sql('INSERT INTO repositories (name, created_at) VALUES (?, ?)'),
  blob: sql("INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, 'x', 0)"),
  link: sql('INSERT INTO repo_blobs (repo, digest) VALUES (?, ?)'),
  manifest: sql("INSERT INTO manifests (repo, digest, media_type, size, artifact_type, subject, created_at, pulled_at) VALUES (?, ?, 'application/x', ?, ?, ?, ?, ?)"),
  ref: sql('INSERT INTO manifest_refs (repo, digest, child) VALUES (?, ?, ?)'),
  tag: sql('INSERT INTO tags (repo, tag, digest, updated_at, pulled_at, bridged_from_v1) VALUES (?, ?, ?, ?, ?, ?)'),
  upload: sql("INSERT INTO uploads (id, size, state, started_at, updated_at) VALUES (?, ?, '{}', 0, 0)"),
  doomed: sql("INSERT INTO gc_doomed (digest, location, size, doomed_at) VALUES (?, 'x', 1, 0)"),
};

// Blobs: manifests m1, m2, m3, an index and a referrer; configs and layers.
const M1 = digestOf(1), M2 = digestOf(2), M3 = digestOf(3), IDX = digestOf(4), REF = digestOf(5);
const CFG = digestOf(10), L1 = digestOf(11), L2 = digestOf(12), L3 = digestOf(13);
const SIZES: Record<string, number> = { [M1]: 5, [M2]: 6, [M3]: 8, [IDX]: 7, [REF]: 9, [CFG]: 10, [L1]: 100, [L2]: 1000, [L3]: 50 };

/**
 * team/app: m1 (cfg, l1) tagged v1, m2 (cfg, l2), an index of both tagged latest, m3 (l3) pushed by digest,
 * a referrer of m1; team/db: m1 tagged x. other/v1: a v1 image chain (layers 20 and 30) tagged latest, and a
 * tag naming an image it does not have.
 */
async function fixture(db: IndexDatabase) {
  const core = new MetadataIndex(db);
  const v1 = new V1Index(db, core);
  await db.run(W.repo, 'team/app', 1000);
  await db.run(W.repo, 'team/db', 2000);
  for (const [digest, size] of Object.entries(SIZES)) await db.run(W.blob, digest, size);
  for (const d of [M1, M2, M3, IDX, REF, CFG, L1, L2, L3]) await db.run(W.link, 'team/app', d);
  for (const d of [M1, CFG, L1]) await db.run(W.link, 'team/db', d);
  await db.run(W.manifest, 'team/app', M1, 5, null, null, 100, 7000);
  await db.run(W.manifest, 'team/app', M2, 6, null, null, 200, null);
  await db.run(W.manifest, 'team/app', IDX, 7, null, null, 300, null);
  await db.run(W.manifest, 'team/app', M3, 8, 'application/x-art', null, 400, null);
  await db.run(W.manifest, 'team/app', REF, 9, 'application/sig', M1, 500, null);
  await db.run(W.manifest, 'team/db', M1, 5, null, null, 150, null);
  for (const [d, c] of [[M1, CFG], [M1, L1], [M2, CFG], [M2, L2], [IDX, M1], [IDX, M2], [M3, L3]] as const) await db.run(W.ref, 'team/app', d, c);
  for (const [d, c] of [[M1, CFG], [M1, L1]] as const) await db.run(W.ref, 'team/db', d, c);
  await db.run(W.tag, 'team/app', 'latest', IDX, 3000, 9000, null);
  await db.run(W.tag, 'team/app', 'v1', M1, 2500, null, 'v1');
  await db.run(W.tag, 'team/db', 'x', M1, 2600, null, null);

  await v1.putV1ImageJson('other/v1', idOf(1), null, digestOf(101));
  await v1.setV1Layer('other/v1', idOf(1), digestOf(101), digestOf(111), 20, 's1');
  await v1.putV1ImageJson('other/v1', idOf(2), idOf(1), digestOf(102));
  await v1.setV1Layer('other/v1', idOf(2), digestOf(102), digestOf(112), 30, 's2');
  await v1.setV1Tag('other/v1', 'latest', idOf(2), '{}');
  await v1.setV1Tag('other/v1', 'lost', idOf(9), '{}');
  return { core, v1, browse: new BrowseIndex(db) };
}

forEachIndex(t, 'a repository: last push, bytes, tags', async (t, db) => {
  const { browse } = await fixture(db);
  t.same(await browse.repository('team/app'), { name: 'team/app', description: '', pushedAt: 3000, bytes: 1195, tags: 2 });
  t.same(await browse.repository('team/db'), { name: 'team/db', description: '', pushedAt: 2600, bytes: 115, tags: 1 });
  const other = (await browse.repository('other/v1'))!;
  const images = [...(await browse.v1Images('other/v1', [idOf(1), idOf(2)])).values()];
  t.equal(other.pushedAt, Math.max(...images.map((i) => i.createdAt)), 'its newest v1 image is its last push');
  t.equal(other.tags, 2);
  t.equal(await browse.repository('none'), undefined);
});

forEachIndex(t, 'tags, v1 tags, untagged manifests, parents and tags of a manifest', async (t, db) => {
  const { browse } = await fixture(db);
  t.same(await browse.tags('team/app', 10), [
    { tag: 'latest', digest: IDX, mediaType: 'application/x', manifestSize: 7, totalSize: 1128, createdAt: 300, updatedAt: 3000, pulledAt: 9000, artifactType: null, bridged: false },
    { tag: 'v1', digest: M1, mediaType: 'application/x', manifestSize: 5, totalSize: 115, createdAt: 100, updatedAt: 2500, pulledAt: 7000, artifactType: null, bridged: true },
  ]);
  t.same((await browse.tags('team/app', 1)).map((r) => r.tag), ['latest']);
  t.same((await browse.tags('team/db', 10)).map((r) => r.pulledAt), [null], 'never pulled: null');

  const v1Tags = await browse.v1Tags('other/v1', 10);
  t.match(v1Tags, [
    { tag: 'latest', imageId: idOf(2), createdAt: Number, totalSize: 50, layers: 2 },
    { tag: 'lost', imageId: idOf(9), createdAt: null, totalSize: 0, layers: 1 },
  ]);
  t.equal(v1Tags.length, 2);

  t.same(await browse.untagged('team/app', 10), [{ digest: M3, mediaType: 'application/x', size: 8, createdAt: 400, artifactType: 'application/x-art', subject: null, tags: 0 }]);
  t.same(await browse.untagged('team/db', 10), []);
  t.same(await browse.tagsOf('team/app', M1), ['v1']);
  t.same(await browse.tagsOf('team/app', M3), []);
  t.same(await browse.parentsOf('team/app', M1), [IDX]);
  t.same(await browse.parentsOf('team/app', IDX), []);
  t.same(await browse.manifestTimes('team/app', M1), { createdAt: 100, pulledAt: 7000 });
  t.same(await browse.manifestTimes('team/app', M2), { createdAt: 200, pulledAt: null });
  t.equal(await browse.manifestTimes('team/db', M2), undefined);
});

forEachIndex(t, 'sizes: reached, reclaimable, of blobs and v1 images', async (t, db) => {
  const { browse } = await fixture(db);
  t.same([...(await browse.totalSizes('team/app', [IDX, M1, M3, digestOf(99)])).entries()].sort(), [
    [M1, 115],
    [M3, 58],
    [IDX, 1128],
  ].sort());
  t.same(await browse.totalSizes('team/app', []), new Map());
  // m2: listed by the index, its config used by m1: only its layer goes.
  t.same(await browse.reclaimable('team/app', M2), { repoBytes: 1000, storeBytes: 1000 });
  t.same(await browse.reclaimable('team/app', M3), { repoBytes: 58, storeBytes: 58 });
  // team/db's m1: all of it leaves team/db, none of it the store (team/app holds it).
  t.same(await browse.reclaimable('team/db', M1), { repoBytes: 115, storeBytes: 0 });
  t.same(await browse.reclaimable('team/db', digestOf(99)), { repoBytes: 0, storeBytes: 0 });
  t.same(await browse.blobSizes([L1, L2, digestOf(99)]), new Map([[L1, 100], [L2, 1000]]));
  const images = await browse.v1Images('other/v1', [idOf(1), idOf(2), idOf(9)]);
  t.same([...images.keys()].sort(), [idOf(1), idOf(2)]);
  t.match(images.get(idOf(1)), { layerSize: 20, createdAt: Number, jsonDigest: digestOf(101) });
  t.same(await browse.v1Images('team/app', [idOf(1)]), new Map());
});

forEachIndex(t, 'usage and totals', async (t, db) => {
  const { browse } = await fixture(db);
  const all: NamePattern[] = [{ prefix: '' }];
  const usage = await browse.usage(all, 10);
  t.same(usage.rows.slice(0, 2), [
    { repo: 'team/app', bytes: 1195, blobs: 9, sharedBytes: 115, uniqueBytes: 1080 },
    { repo: 'team/db', bytes: 115, blobs: 3, sharedBytes: 115, uniqueBytes: 0 },
  ]);
  t.equal(usage.repositories, 3, 'other/v1 is charged for its v1 images');
  const v1Bytes = usage.rows[2]!.bytes;
  t.equal(usage.bytes, 1195 + 115 + v1Bytes);
  t.same((await browse.usage(all, 1)).rows.map((r) => r.repo), ['team/app']);
  // Two ranges, merged by bytes: the top one of them.
  const two = await browse.usage([{ exact: 'team/db' }, { prefix: 'other/' }], 1);
  t.same({ ...two, rows: two.rows.map((r) => r.repo) }, { repositories: 2, bytes: 115 + v1Bytes, rows: [v1Bytes > 115 ? 'other/v1' : 'team/db'] });
  t.same(await browse.usage([], 10), { rows: [], repositories: 0, bytes: 0 });

  await db.run(W.upload, 'u1', 40);
  await db.run(W.upload, 'u2', 2);
  await db.run(W.doomed, digestOf(77));
  t.same(await browse.totals(), { repositories: 3, blobs: 9, bytes: 1195, uploads: 2, uploadBytes: 42, doomed: 1 });
});

forEachIndex(t, 'setDescription: set, searched, false for no repository', async (t, db) => {
  const { browse, core } = await fixture(db);
  t.equal(await browse.setDescription('team/db', 'The Database'), true);
  t.equal(await browse.setDescription('none', 'x'), false);
  t.equal((await browse.repository('team/db'))!.description, 'The Database');
  t.same((await core.search('database', 10, 0)).hits, [{ name: 'team/db', description: 'The Database' }]);
  t.equal(await core.getRepository('none'), undefined, 'no repository made');
  // Inside a transaction: a savepoint of it, undone with it.
  await t.rejects(
    core.transaction(async (tx) => {
      t.equal(await tx(browse).setDescription('team/db', 'changed'), true);
      throw new Error('no');
    }),
    /no/,
  );
  t.equal((await browse.repository('team/db'))!.description, 'The Database');
});

/** Many repositories, `p/NN`, with ties in last push and in bytes, and a few others. */
async function many(db: IndexDatabase) {
  const expected: RepoRow[] = [];
  for (let n = 0; n < 14; n++) {
    const name = `p/${String(n).padStart(2, '0')}`;
    const pushedAt = (n % 4) * 1000 + 1;
    const bytes = (n % 3) * 10;
    await db.run(W.repo, name, pushedAt);
    if (bytes > 0) {
      await db.run(W.blob, digestOf(500 + n), bytes);
      await db.run(W.link, name, digestOf(500 + n));
    }
    expected.push({ name, description: n === 5 ? 'An App' : '', pushedAt, bytes, tags: 0 });
  }
  for (const name of ['q/a', 'r/app', 'r/b/c', 'rr']) {
    await db.run(W.repo, name, 5);
    expected.push({ name, description: '', pushedAt: 5, bytes: 0, tags: 0 });
  }
  await new BrowseIndex(db).setDescription('p/05', 'An App');
  return expected;
}

const byteOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const ORDERS: Record<RepoSort, (a: RepoRow, b: RepoRow) => number> = {
  name: (a, b) => byteOrder(a.name, b.name),
  pushed: (a, b) => b.pushedAt - a.pushedAt || byteOrder(a.name, b.name),
  size: (a, b) => b.bytes - a.bytes || byteOrder(a.name, b.name),
};

forEachIndex(t, 'repository listings: every sort, page by page, over one range and several', async (t, db) => {
  const rows = await many(db);
  const browse = new BrowseIndex(db);
  const cases: { visible: NamePattern[]; test: (n: string) => boolean }[] = [
    { visible: [{ prefix: '' }], test: () => true },
    { visible: [{ prefix: 'p/' }], test: (n) => n.startsWith('p/') },
    {
      visible: [{ prefix: 'r/', regex: 'r/[^/]*', like: 'r/%' }, { exact: 'q/a' }, { prefix: 'p/', regex: 'p/0[0-9]', like: 'p/0%' }, { exact: 'p/12' }],
      test: (n) => /^(r\/[^/]*|q\/a|p\/0[0-9]|p\/12)$/.test(n),
    },
  ];
  for (const { visible, test } of cases) {
    for (const sort of ['name', 'pushed', 'size'] as const) {
      for (const query of [undefined, 'app']) {
        const want = rows.filter((r) => test(r.name) && (!query || (r.name + ' ' + r.description).toLowerCase().includes(query))).sort(ORDERS[sort]);
        const label = `${JSON.stringify(visible)} by ${sort}${query ? ` "${query}"` : ''}`;
        const got: RepoRow[] = [];
        let after: RepoCursor | undefined;
        for (let pages = 0; pages < 20; pages++) {
          const page = await browse.repositories({ visible, query, sort, after, limit: 4 });
          t.equal(page.total, want.length, `${label}: total`);
          t.ok(page.rows.length <= 4);
          got.push(...page.rows);
          after = page.next;
          if (!after) break;
        }
        t.same(got, want, `${label}: pages`);
      }
    }
  }
  t.same(await browse.repositories({ visible: [], sort: 'name', limit: 4 }), { rows: [], total: 0 });
  t.same((await browse.repositories({ visible: [{ prefix: '' }], query: '50%_', sort: 'name', limit: 4 })).total, 0, 'LIKE wildcards are literal');
});
