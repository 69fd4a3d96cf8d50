import t from 'tap';
import type { IndexDatabase } from '../../src/index/database';
import { MetadataIndex } from '../../src/index/metadata-index';
import { RepositoryIndex } from '../../src/index/repository-index';
import { sql } from '../../src/index/sql';
import { V2Index } from '../../src/index/v2-index';
import type { Digest } from '../../src/storage/digest';
import { forEachIndex } from '../helpers/index-db';

// Deleting a whole repository on both implementations (SQLite, PostgreSQL): both protocols' content goes
// in one transaction, other repositories keep theirs, and the caller's work inside it commits or rolls
// back with it.

const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;
const id = (c: string) => c.repeat(64);

// v1 and bridge rows written directly: their own index objects are not what is tested here.
const Q = {
  v1Image: sql("INSERT INTO v1_images (repo, id, json_digest, created_at) VALUES (?, ?, ?, 0)"),
  v1Tag: sql("INSERT INTO v1_tags (repo, tag, image_id, meta) VALUES (?, ?, ?, '{}')"),
  v1RepoImage: sql('INSERT INTO v1_repo_images (repo, image_id, position) VALUES (?, ?, 0)'),
  bridged: sql('INSERT INTO v1_bridged (repo, manifest, top_id, reason) VALUES (?, ?, ?, NULL)'),
  bridgedImage: sql(`INSERT INTO v1_bridged_images (repo, id, manifest, json, layer_digest, layer_size) VALUES (?, ?, ?, '{}', ?, 1)`),
  count: sql<number>(
    `SELECT (SELECT count(*) FROM tags WHERE repo = @r) + (SELECT count(*) FROM manifests WHERE repo = @r)
          + (SELECT count(*) FROM manifest_refs WHERE repo = @r) + (SELECT count(*) FROM repo_blobs WHERE repo = @r)
          + (SELECT count(*) FROM v1_tags WHERE repo = @r) + (SELECT count(*) FROM v1_repo_images WHERE repo = @r)
          + (SELECT count(*) FROM v1_images WHERE repo = @r) + (SELECT count(*) FROM v1_bridged WHERE repo = @r)
          + (SELECT count(*) FROM v1_bridged_images WHERE repo = @r) + (SELECT count(*) FROM uploads WHERE repo = @r)`,
    { pluck: true },
  ),
};

/** A repository with content of every kind. */
async function fill(db: IndexDatabase, core: MetadataIndex, v2: V2Index, repo: string): Promise<void> {
  await core.putBlob({ digest: digestOf(1), size: 10, location: 'a' });
  await v2.linkBlob(repo, digestOf(1));
  await v2.putManifest({ repo, digest: digestOf(2), mediaType: 'm', size: 2, artifactType: null, subject: null, annotations: null }, [digestOf(1)], 'latest');
  await v2.putManifest({ repo, digest: digestOf(2), mediaType: 'm', size: 2, artifactType: null, subject: null, annotations: null }, [], 'v2');
  await db.run(Q.v1Image, repo, id('a'), digestOf(1));
  await db.run(Q.v1Image, repo, id('b'), digestOf(1));
  await db.run(Q.v1Tag, repo, 'old', id('a'));
  await db.run(Q.v1RepoImage, repo, id('a'));
  await db.run(Q.bridged, repo, digestOf(2), id('c'));
  await db.run(Q.bridgedImage, repo, id('c'), digestOf(2), digestOf(1));
  await core.createUpload(`u-${repo}`, repo, {});
}

forEachIndex(t, 'deleteRepository: everything of the repository, nothing of another', async (t, db) => {
  const core = new MetadataIndex(db);
  const v2 = new V2Index(db, core);
  const repos = new RepositoryIndex(db, core);
  await fill(db, core, v2, 'r/a');
  await fill(db, core, v2, 'r/b');
  const before = (await db.get(Q.count, { r: 'r/b' }))!;

  t.same(await repos.deleteRepository('r/a'), { tags: 2, manifests: 1, blobs: 2, v1Tags: 1, v1Images: 2, uploads: 1 });
  t.equal(await db.get(Q.count, { r: 'r/a' }), 0, 'no row of r/a is left');
  t.equal(await core.getRepository('r/a'), undefined);
  t.equal(await db.get(Q.count, { r: 'r/b' }), before, 'r/b is whole');
  t.ok(await core.getRepository('r/b'));
  t.ok(await core.getBlob(digestOf(1)), 'the bytes stay for garbage collection');

  t.equal(await repos.deleteRepository('r/a'), undefined, 'gone: undefined');
  t.equal(await repos.deleteRepository('never'), undefined);
});

forEachIndex(t, 'deleteRepository: the work of `within` is part of the transaction', async (t, db) => {
  const core = new MetadataIndex(db);
  const v2 = new V2Index(db, core);
  const repos = new RepositoryIndex(db, core);
  await fill(db, core, v2, 'r/a');
  const before = (await db.get(Q.count, { r: 'r/a' }))!;

  // `within` fails: the whole delete is undone, its own write too.
  await t.rejects(
    repos.deleteRepository('r/a', async (tx) => {
      t.equal(await tx(v2).resolveTag('r/a', 'latest'), undefined, 'within sees the delete');
      await tx(core).ensureRepository('r/event');
      throw new Error('event refused');
    }),
    /event refused/,
  );
  t.equal(await db.get(Q.count, { r: 'r/a' }), before, 'nothing was deleted');
  t.ok(await core.getRepository('r/a'));
  t.equal(await core.getRepository('r/event'), undefined);

  // `within` succeeds: both commit.
  const deleted = await repos.deleteRepository('r/a', async (tx) => tx(core).ensureRepository('r/event'));
  t.equal(deleted?.manifests, 1);
  t.equal(await core.getRepository('r/a'), undefined);
  t.ok(await core.getRepository('r/event'));
});

forEachIndex(t, 'deleteRepository inside a caller transaction rolls back with it', async (t, db) => {
  const core = new MetadataIndex(db);
  const v2 = new V2Index(db, core);
  const repos = new RepositoryIndex(db, core);
  await fill(db, core, v2, 'r/a');
  await t.rejects(
    core.transaction(async (tx) => {
      t.ok(await tx(repos).deleteRepository('r/a'));
      throw new Error('abort');
    }),
  );
  t.ok(await core.getRepository('r/a'));
  t.equal(await v2.resolveTag('r/a', 'latest'), digestOf(2));
});
