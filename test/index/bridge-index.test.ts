import t from 'tap';
import { BridgeIndex, type BridgedImageRecord } from '../../src/index/bridge-index';
import type { IndexDatabase } from '../../src/index/database';
import { MetadataIndex } from '../../src/index/metadata-index';
import { sql } from '../../src/index/sql';
import { V2Index, type ManifestRecord } from '../../src/index/v2-index';
import type { Digest } from '../../src/storage/digest';
import { forEachIndex } from '../helpers/index-db';

// What the v2 -> v1 bridge reads and keeps, on both implementations (SQLite, PostgreSQL): v2-only tags,
// made images (live only with their manifest), the images recorded as one transaction, and the repositories
// holding an image id among the visible ones.

const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const id = (c: string) => c.repeat(64);
/** A v1 tag, written directly: the v1 index is not what is tested here. */
const putV1Tag = sql("INSERT INTO v1_tags (repo, tag, image_id, meta) VALUES (?, ?, ?, '{}')");

const manifest = (repo: string, n: number): ManifestRecord => ({
  repo,
  digest: digestOf(n),
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  size: n,
  artifactType: null,
  subject: null,
  annotations: null,
});

/** A chain of two images made of manifest `m`: root `a`, top `b`. */
const chain = (repo: string, m: Digest): BridgedImageRecord[] => [
  { repo, id: id('a'), parent: null, manifest: m, json: '{"id":"a"}', layerDigest: digestOf(100), layerSize: 10 },
  { repo, id: id('b'), parent: id('a'), manifest: m, json: '{"id":"b"}', layerDigest: digestOf(101), layerSize: 11 },
];

function open(db: IndexDatabase) {
  const core = new MetadataIndex(db);
  return { core, v2: new V2Index(db, core), bridge: new BridgeIndex(db) };
}

forEachIndex(t, 'v2-only tags: pushed over v2, no v1 tag of that name', async (t, db) => {
  const { v2, bridge } = open(db);
  await v2.putManifest(manifest('r/a', 1), [], 'latest');
  await v2.putManifest(manifest('r/a', 2), [], 'b-tag');
  await v2.putManifest(manifest('r/a', 3), [], 'from-v1', id('f')); // bridged from v1: not v2-only
  await v2.putManifest(manifest('r/a', 4), [], 'shadowed');
  await db.run(putV1Tag, 'r/a', 'shadowed', id('e')); // a v1 tag of that name wins for v1 clients
  t.same(await bridge.v2OnlyTags('r/a'), [
    { tag: 'b-tag', digest: digestOf(2) },
    { tag: 'latest', digest: digestOf(1) },
  ]);
  t.equal(await bridge.v2OnlyTag('r/a', 'latest'), digestOf(1));
  t.equal(await bridge.v2OnlyTag('r/a', 'from-v1'), undefined);
  t.equal(await bridge.v2OnlyTag('r/a', 'shadowed'), undefined);
  t.equal(await bridge.v2OnlyTag('r/a', 'none'), undefined);
  t.same(await bridge.v2OnlyTags('r/b'), []);
});

forEachIndex(t, 'made images: recorded, read while their manifest lives, no-v1-form reasons', async (t, db) => {
  const { v2, bridge } = open(db);
  await v2.putManifest(manifest('r/a', 1), [], 'latest');
  t.equal(await bridge.bridged('r/a', digestOf(1)), undefined, 'not made yet');
  await bridge.recordImages('r/a', digestOf(1), chain('r/a', digestOf(1)));
  t.same(await bridge.bridged('r/a', digestOf(1)), { topId: id('b'), reason: null });
  t.same(await bridge.image('r/a', id('b')), chain('r/a', digestOf(1))[1]);
  t.same(await bridge.image('r/a', id('a')), chain('r/a', digestOf(1))[0]);
  t.equal(await bridge.image('r/b', id('a')), undefined, 'per repository');

  // Made again (the same ids): replaced, not duplicated.
  const again = chain('r/a', digestOf(1)).map((i) => ({ ...i, layerSize: i.layerSize + 1 }));
  await bridge.recordImages('r/a', digestOf(1), again);
  t.equal((await bridge.image('r/a', id('b')))!.layerSize, 12);

  await bridge.recordNoV1Form('r/a', digestOf(9), 'zstd layers');
  t.same(await bridge.bridged('r/a', digestOf(9)), { topId: null, reason: 'zstd layers' });

  // The manifest goes: its images are no longer served.
  await v2.deleteManifest('r/a', digestOf(1));
  t.equal(await bridge.image('r/a', id('b')), undefined);
  await t.rejects(bridge.recordImages('r/a', digestOf(1), []), /at least one image/);
});

forEachIndex(t, 'recordImages is one transaction, and joins a caller transaction', async (t, db) => {
  const { core, v2, bridge } = open(db);
  await v2.putManifest(manifest('r/a', 1), [], 'latest');
  // The second image misses a NOT NULL column: the first is not kept, nor the manifest marked bridged.
  const bad = chain('r/a', digestOf(1));
  bad[1] = { ...bad[1]!, json: null as unknown as string };
  await t.rejects(bridge.recordImages('r/a', digestOf(1), bad));
  t.equal(await bridge.bridged('r/a', digestOf(1)), undefined);
  t.equal(await bridge.image('r/a', id('a')), undefined);

  // Inside a caller transaction that fails: nothing of it stays either.
  await t.rejects(
    core.transaction(async (tx) => {
      await tx(v2).linkBlob('r/a', digestOf(100));
      await tx(bridge).recordImages('r/a', digestOf(1), chain('r/a', digestOf(1)));
      t.same(await tx(bridge).bridged('r/a', digestOf(1)), { topId: id('b'), reason: null }, 'seen inside');
      throw new Error('abort');
    }),
    /abort/,
  );
  t.equal(await bridge.bridged('r/a', digestOf(1)), undefined);
  t.equal(await v2.isBlobLinked('r/a', digestOf(100)), false);
});

forEachIndex(t, 'reposWithImage: live images of an id among the visible repositories, by name, at most n', async (t, db) => {
  const { v2, bridge } = open(db);
  for (const [n, repo] of ['team/b', 'team/a', 'other/x_y', 'otherxy', 'gone/r'].entries()) {
    await v2.putManifest(manifest(repo, n + 1), [], 'latest');
    await bridge.recordImages(repo, digestOf(n + 1), chain(repo, digestOf(n + 1)));
  }
  await v2.deleteManifest('gone/r', digestOf(5));
  t.same(await bridge.reposWithImage(id('a'), [{ prefix: '' }], 10), ['other/x_y', 'otherxy', 'team/a', 'team/b'], 'a repository whose manifest is gone is not');
  t.same(await bridge.reposWithImage(id('a'), [{ prefix: '' }], 2), ['other/x_y', 'otherxy']);
  t.same(await bridge.reposWithImage(id('b'), [{ prefix: 'team/' }], 10), ['team/a', 'team/b']);
  t.same(await bridge.reposWithImage(id('b'), [{ prefix: 'team/', regex: 'team/b' }], 10), ['team/b']);
  t.same(await bridge.reposWithImage(id('b'), [{ exact: 'other/x_y' }, { prefix: 'team/' }], 2), ['other/x_y', 'team/a']);
  t.same(await bridge.reposWithImage(id('c'), [{ prefix: '' }], 10), []);
});
