import Database from 'better-sqlite3';
import path from 'node:path';
import t from 'tap';
import { openDatabase } from '../../src/index/db';
import { MetadataIndex } from '../../src/index/metadata-index';
import { MIGRATIONS } from '../../src/index/migrations';
import { RepositoryIndex } from '../../src/index/repository-index';
import { UsageIndex } from '../../src/index/usage-index';
import { V1Index } from '../../src/index/v1-index';
import { V2Index } from '../../src/index/v2-index';
import type { Digest } from '../../src/storage/digest';
import { tempDir } from '../helpers/server';

// Usage per repository (migration 5's triggers): every path that adds or removes a reference moves it, each
// blob is charged once per repository, and an index written before migration 5 starts with the right figures.

const d = (c: string) => `sha256:${c.repeat(64)}` as Digest;

function open() {
  const db = openDatabase(':memory:');
  const core = new MetadataIndex(db);
  const blob = (digest: Digest, size: number) => core.putBlob({ digest, size, location: digest });
  return { db, core, v2: new V2Index(db, core), v1: new V1Index(db, core), usage: new UsageIndex(db), repos: new RepositoryIndex(db, core), blob };
}

const used = (u: UsageIndex, repo: string) => u.bytesUsed([{ exact: repo }]);

t.test('links, manifests and v1 images charge each blob once per repository', async (t) => {
  const { v2, v1, usage, blob } = open();
  await blob(d('a'), 100);
  await blob(d('b'), 20);
  await blob(d('c'), 3);
  await v2.linkBlob('ns/one', d('a'));
  await v2.linkBlob('ns/one', d('a')); // linked again: no second charge
  t.equal(await used(usage, 'ns/one'), 100);
  t.ok(await usage.isCharged('ns/one', d('a')));
  t.notOk(await usage.isCharged('ns/two', d('a')));

  await v2.putManifest({ repo: 'ns/one', digest: d('b'), mediaType: 'x', size: 20, artifactType: null, subject: null, annotations: null }, [d('a')], 'latest');
  t.equal(await used(usage, 'ns/one'), 120, 'the manifest bytes count, the layer it names is counted already');

  // The same layer in a v1 image of the same repository: still once. In another repository: once there too.
  await v1.putV1ImageJson('ns/one', 'f'.repeat(64), null, d('c'));
  await v1.setV1Layer('ns/one', 'f'.repeat(64), d('c'), d('a'), 100, 'sum');
  t.equal(await used(usage, 'ns/one'), 123, 'json added, layer already charged');
  await v2.linkBlob('ns/two', d('a'));
  t.equal(await used(usage, 'ns/two'), 100);
  t.equal(await usage.bytesUsed([{ prefix: 'ns/' }]), 223, 'a namespace adds its repositories up');

  const [one, two] = await usage.perRepository();
  t.same(one, { repo: 'ns/one', bytes: 123, blobs: 3, sharedBytes: 100, uniqueBytes: 23 });
  t.same(two, { repo: 'ns/two', bytes: 100, blobs: 1, sharedBytes: 100, uniqueBytes: 0 });

  // The link goes, but the v1 image still names the layer: still charged. Then the image goes too.
  await v2.unlinkBlob('ns/one', d('a'));
  t.equal(await used(usage, 'ns/one'), 123, 'the v1 image still holds the layer');
  await v2.deleteManifest('ns/one', d('b'));
  t.equal(await used(usage, 'ns/one'), 103);
});

t.test('a v1 image whose JSON is replaced while in progress moves its charge', async (t) => {
  const { v1, usage, blob } = open();
  await blob(d('1'), 10);
  await blob(d('2'), 7);
  const id = 'e'.repeat(64);
  await v1.putV1ImageJson('v1/r', id, null, d('1'));
  t.equal(await used(usage, 'v1/r'), 10);
  await v1.putV1ImageJson('v1/r', id, null, d('2'));
  t.equal(await used(usage, 'v1/r'), 7, 'the old JSON is no longer charged');
});

t.test('deleting a repository removes its usage entirely', async (t) => {
  const { v2, v1, usage, repos, blob } = open();
  await blob(d('a'), 5);
  await blob(d('b'), 6);
  await v2.linkBlob('gone/r', d('a'));
  await v1.putV1ImageJson('gone/r', 'a'.repeat(64), null, d('b'));
  await v2.linkBlob('kept/r', d('a'));
  t.equal(await used(usage, 'gone/r'), 11);
  t.same(await repos.deleteRepository('gone/r'), { tags: 0, manifests: 0, blobs: 1, v1Tags: 0, v1Images: 1, uploads: 0 });
  t.equal(await used(usage, 'gone/r'), 0);
  t.same((await usage.perRepository()).map((r) => r.repo), ['kept/r'], 'no row is left for it');
  t.equal(await repos.deleteRepository('gone/r'), undefined, 'a second delete finds nothing');
});

t.test('an index from before migration 5 starts with the usage its references make', async (t) => {
  const file = path.join(tempDir(t), 'index.db');
  const old = new Database(file);
  for (const [v, sql] of MIGRATIONS.slice(0, 4).entries()) {
    old.exec(sql);
    old.pragma(`user_version = ${v + 1}`);
  }
  const blob = old.prepare('INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, 1)');
  blob.run(d('a'), 1000, 'x');
  blob.run(d('b'), 10, 'y');
  old.prepare("INSERT INTO repositories (name, created_at) VALUES ('old/r', 1)").run();
  old.prepare("INSERT INTO repo_blobs (repo, digest, linked_at) VALUES ('old/r', ?, 1)").run(d('a'));
  old.prepare("INSERT INTO v1_images (repo, id, json_digest, layer_digest, created_at) VALUES ('old/r', ?, ?, ?, 1)").run('c'.repeat(64), d('b'), d('a'));
  old.close();

  const db = openDatabase(file);
  t.teardown(() => db.close());
  const usage = new UsageIndex(db);
  t.same(await usage.perRepository(), [{ repo: 'old/r', bytes: 1010, blobs: 2, sharedBytes: 0, uniqueBytes: 1010 }]);
  // The counts go on from there: removing the link leaves the v1 image's charge.
  db.prepare("DELETE FROM repo_blobs WHERE repo = 'old/r'").run();
  t.equal(await usage.bytesUsed([{ exact: 'old/r' }]), 1010);
  db.prepare("DELETE FROM v1_images WHERE repo = 'old/r'").run();
  t.equal(await usage.bytesUsed([{ exact: 'old/r' }]), 0);
});
