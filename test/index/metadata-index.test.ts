import t from 'tap';
import { MetadataIndex } from '../../src/index/metadata-index';
import { StatsIndex } from '../../src/index/stats-index';
import { UsageIndex } from '../../src/index/usage-index';
import { V2Index } from '../../src/index/v2-index';
import { forEachIndex } from '../helpers/index-db';

// The metadata, usage and stats index objects on both implementations (SQLite, PostgreSQL).

const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as const;

forEachIndex(t, 'blobs: the first record wins', async (t, db) => {
  const core = new MetadataIndex(db);
  t.equal(await core.getBlob(digestOf(1)), undefined);
  t.same(await core.putBlob({ digest: digestOf(1), size: 5, location: 'a' }), { digest: digestOf(1), size: 5, location: 'a' });
  t.same(await core.putBlob({ digest: digestOf(1), size: 5, location: 'b' }), { digest: digestOf(1), size: 5, location: 'a' });
  t.same(await core.getBlob(digestOf(1)), { digest: digestOf(1), size: 5, location: 'a' });
  await core.ping();
});

forEachIndex(t, 'uploads: the per-owner limit, digests, updates, staleness', async (t, db) => {
  const core = new MetadataIndex(db);
  t.equal(await core.createUpload('u1', 'r/a', { n: 1 }, 'alice', 2), true);
  t.equal(await core.createUpload('u2', 'r/a', {}, 'alice', 2), true);
  t.equal(await core.createUpload('u3', 'r/a', {}, 'alice', 2), false, 'a third is refused');
  t.equal(await core.createUpload('u4', null, {}), true, 'no owner: no limit');
  const u1 = await core.getUpload('u1');
  t.match(u1, { id: 'u1', repo: 'r/a', owner: 'alice', digest: null, size: 0, state: { n: 1 } });
  await core.updateUpload('u1', 10, { n: 2 });
  t.match(await core.getUpload('u1'), { size: 10, state: { n: 2 } });
  t.equal(await core.setUploadDigest('u1', digestOf(7), 10, {}), true);
  t.equal((await core.getUpload('u1'))!.digest, digestOf(7));
  t.equal((await core.allUploads()).length, 3);
  t.same((await core.staleUploads(Date.now() + 1000)).map((u) => u.id).sort(), ['u1', 'u2', 'u4']);
  t.same(await core.staleUploads(0), []);
  await core.deleteUpload('u1');
  t.equal(await core.getUpload('u1'), undefined);
});

forEachIndex(t, 'repositories, search and totals', async (t, db) => {
  const core = new MetadataIndex(db);
  for (const name of ['team/app', 'team/db', 'other/app_x']) await core.ensureRepository(name);
  await core.ensureRepository('team/app');
  t.match(await core.getRepository('team/app'), { name: 'team/app', v1Private: false, v1Indexed: false });
  await core.setV1Private('team/app', true);
  t.equal((await core.getRepository('team/app'))!.v1Private, true);
  t.same(await core.search('APP', 10, 0), { total: 2, hits: [{ name: 'other/app_x', description: '' }, { name: 'team/app', description: '' }] });
  t.same((await core.search('p_', 10, 0)).hits.map((h) => h.name), ['other/app_x'], 'LIKE wildcards are literal');
  t.same(await core.search('', 1, 1), { total: 3, hits: [{ name: 'team/app', description: '' }] });
  t.same((await core.search('', 10, 0, [{ prefix: 'team/' }])).hits.map((h) => h.name), ['team/app', 'team/db']);
  t.same((await core.search('', 10, 0, [{ prefix: 'team/', regex: 'team/d.*' }])).hits.map((h) => h.name), ['team/db']);

  // Charges: each blob once per repository that links it; shared bytes are charged to another repository too.
  await core.putBlob({ digest: digestOf(1), size: 100, location: 'x' });
  await core.putBlob({ digest: digestOf(2), size: 10, location: 'y' });
  const usage = new UsageIndex(db);
  t.equal(await usage.isCharged('team/db', digestOf(2)), false);
  t.equal(await usage.bytesUsed([{ prefix: 'team/' }]), 0);
  t.same(await usage.perRepository(), []);
  const v2 = new V2Index(db, core);
  await v2.linkBlob('team/app', digestOf(1));
  await v2.linkBlob('team/app', digestOf(1)); // linked again: charged once
  await v2.linkBlob('team/db', digestOf(1));
  await v2.linkBlob('team/db', digestOf(2));
  t.equal(await usage.isCharged('team/db', digestOf(2)), true);
  t.equal(await usage.isCharged('team/app', digestOf(2)), false);
  t.equal(await usage.bytesUsed([{ exact: 'team/app' }]), 100);
  t.equal(await usage.bytesUsed([{ prefix: 'team/' }]), 210);
  t.equal(await usage.bytesUsed([{ prefix: 'team/', regex: 'team/d.*' }]), 110);
  t.same(await usage.perRepository(), [
    { repo: 'team/app', bytes: 100, blobs: 1, sharedBytes: 100, uniqueBytes: 0 },
    { repo: 'team/db', bytes: 110, blobs: 2, sharedBytes: 100, uniqueBytes: 10 },
  ]);
  t.same(await usage.perRepository([{ exact: 'team/db' }]), [{ repo: 'team/db', bytes: 110, blobs: 2, sharedBytes: 100, uniqueBytes: 10 }]);
  await v2.unlinkBlob('team/app', digestOf(1));
  t.same(await usage.perRepository(), [{ repo: 'team/db', bytes: 110, blobs: 2, sharedBytes: 0, uniqueBytes: 110 }]);
  t.same(await new StatsIndex(db).totals(), { blobs: 2, blobBytes: 110, uploads: 0, uploadBytes: 0, repositories: 3 });
  t.equal(await core.deleteRepository('team/app'), true);
  t.equal(await core.deleteRepository('team/app'), false);
});

forEachIndex(t, 'a transaction commits or rolls back as one; savepoints nest', async (t, db) => {
  const core = new MetadataIndex(db);
  await t.rejects(
    core.transaction(async (tx) => {
      await tx(core).ensureRepository('gone');
      throw new Error('no');
    }),
    /no/,
  );
  t.equal(await core.getRepository('gone'), undefined);
  await core.transaction(async (tx) => {
    await tx(core).ensureRepository('kept');
    await t.rejects(
      tx(core).transaction(async (inner) => {
        await inner(core).ensureRepository('inner');
        throw new Error('inner');
      }),
    );
  });
  t.ok(await core.getRepository('kept'));
  t.equal(await core.getRepository('inner'), undefined);
});
