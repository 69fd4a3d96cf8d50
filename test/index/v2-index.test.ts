import t from 'tap';
import type { IndexDatabase } from '../../src/index/database';
import { MetadataIndex } from '../../src/index/metadata-index';
import { sql } from '../../src/index/sql';
import { V2Index } from '../../src/index/v2-index';
import { forEachIndex } from '../helpers/index-db';
import { digestOf, manifestRecord } from '../helpers/index-rows';

// The v2 index object on both implementations (SQLite, PostgreSQL): blob links, manifests with their
// references and referrers, tags (pushed and bridged), tag listings and the catalog.

/** A v1 tag, written directly: the v1 index is not what is tested here. */
const putV1Tag = sql("INSERT INTO v1_tags (repo, tag, image_id, meta) VALUES (?, ?, ?, '{}')");

const manifest = manifestRecord;

function open(db: IndexDatabase) {
  const core = new MetadataIndex(db);
  return { core, v2: new V2Index(db, core) };
}

forEachIndex(t, 'blob links: link, touch, missing, unlink', async (t, db) => {
  const { core, v2 } = open(db);
  await core.putBlob({ digest: digestOf(1), size: 10, location: 'a' });
  await core.putBlob({ digest: digestOf(2), size: 20, location: 'b' });
  t.equal(await v2.isBlobLinked('r/a', digestOf(1)), false);
  t.equal(await v2.linkedAt('r/a', digestOf(1)), undefined);

  const before = Date.now();
  await v2.linkBlob('r/a', digestOf(1));
  t.ok(await core.getRepository('r/a'), 'linking creates the repository');
  t.equal(await v2.isBlobLinked('r/a', digestOf(1)), true);
  const at = (await v2.linkedAt('r/a', digestOf(1)))!;
  t.ok(at >= before && at <= Date.now(), 'linked_at is now');

  // touchLink moves only a link older than its bound.
  await v2.touchLink('r/a', digestOf(1), 0);
  t.equal(await v2.linkedAt('r/a', digestOf(1)), at, 'not stale: untouched');
  await new Promise((r) => setTimeout(r, 5));
  await v2.touchLink('r/a', digestOf(1), Date.now() + 1000);
  t.ok((await v2.linkedAt('r/a', digestOf(1)))! > at, 'stale: touched');

  // Missing: not linked, or linked but not stored (digest 3); duplicates count once.
  await v2.linkBlob('r/a', digestOf(3));
  t.same([...(await v2.missingBlobs('r/a', []))], []);
  t.same([...(await v2.missingBlobs('r/a', [digestOf(1), digestOf(2), digestOf(3), digestOf(2)]))].sort(), [digestOf(2), digestOf(3)]);
  t.same([...(await v2.missingBlobs('r/b', [digestOf(1)]))], [digestOf(1)], 'a link of another repository does not count');

  t.equal(await v2.unlinkBlob('r/a', digestOf(1)), true);
  t.equal(await v2.unlinkBlob('r/a', digestOf(1)), false);
  t.equal(await v2.isBlobLinked('r/a', digestOf(1)), false);
});

forEachIndex(t, 'manifests: put (idempotent), get, referrers, missing, delete', async (t, db) => {
  const { core, v2 } = open(db);
  const base = manifest('r/a', 1, { annotations: { 'org.example': 'x' } });
  await v2.putManifest(base, [digestOf(10), digestOf(11)]);
  await v2.putManifest({ ...base, size: 999 }, [digestOf(10)]);
  t.same(await v2.getManifest('r/a', digestOf(1)), base, 'the first record stays');
  t.equal(await v2.getManifest('r/b', digestOf(1)), undefined);
  t.ok(await core.getRepository('r/a'));
  t.equal(await v2.isBlobLinked('r/a', digestOf(1)), true, 'a manifest is linked to its repository');
  t.same([...(await v2.missingManifests('r/a', [digestOf(1), digestOf(2)]))], [digestOf(2)]);

  // Referrers, oldest first, then by digest.
  const sig = manifest('r/a', 3, { subject: digestOf(1), artifactType: 'application/x-sig' });
  const sbom = manifest('r/a', 2, { subject: digestOf(1), artifactType: 'application/x-sbom' });
  await v2.putManifest(sig, []);
  await v2.putManifest(sbom, []);
  t.same((await v2.referrers('r/a', digestOf(1))).map((m) => m.artifactType).sort(), ['application/x-sbom', 'application/x-sig']);
  t.same(await v2.referrers('r/a', digestOf(9)), []);

  // Deleting a manifest takes its tags and its link with it.
  await v2.putManifest(manifest('r/a', 4), [], 'v4');
  t.equal(await v2.resolveTag('r/a', 'v4'), digestOf(4));
  t.equal(await v2.deleteManifest('r/a', digestOf(4)), true);
  t.equal(await v2.deleteManifest('r/a', digestOf(4)), false);
  t.equal(await v2.getManifest('r/a', digestOf(4)), undefined);
  t.equal(await v2.resolveTag('r/a', 'v4'), undefined);
  t.equal(await v2.isBlobLinked('r/a', digestOf(4)), false);
});

forEachIndex(t, 'a failed putManifest leaves nothing behind', async (t, db) => {
  const { core, v2 } = open(db);
  // A tagged put whose manifest misses a NOT NULL column fails after the repository row and the link.
  await t.rejects(v2.putManifest({ ...manifest('r/x', 1), mediaType: null as unknown as string }, [digestOf(2)], 'latest'));
  t.equal(await core.getRepository('r/x'), undefined);
  t.equal(await v2.isBlobLinked('r/x', digestOf(1)), false);
  t.equal(await v2.resolveTag('r/x', 'latest'), undefined);
});

forEachIndex(t, 'tags: pushed win over bridged, the v1 tag beside, listings', async (t, db) => {
  const { v2 } = open(db);
  await v2.putManifest(manifest('r/a', 1), [], 'latest');
  t.same(await v2.tag('r/a', 'latest'), { digest: digestOf(1), bridgedFromV1: null });
  t.same(await v2.taggedManifest('r/a', 'latest'), manifest('r/a', 1));
  t.equal(await v2.taggedManifest('r/a', 'nope'), undefined);

  // A bridged tag does not replace a pushed one; it replaces a bridged one; a pushed one replaces it.
  await v2.putManifest(manifest('r/a', 2), [], 'latest', 'a'.repeat(64));
  t.same(await v2.tag('r/a', 'latest'), { digest: digestOf(1), bridgedFromV1: null }, 'a pushed tag wins');
  await v2.putManifest(manifest('r/a', 2), [], 'old', 'a'.repeat(64));
  await v2.putManifest(manifest('r/a', 3), [], 'old', 'b'.repeat(64));
  t.same(await v2.tag('r/a', 'old'), { digest: digestOf(3), bridgedFromV1: 'b'.repeat(64) });
  t.equal(await v2.deleteBridgedTag('r/a', 'latest'), false, 'a pushed tag is no bridged one');
  await v2.putManifest(manifest('r/a', 2), [], 'old');
  t.same(await v2.tag('r/a', 'old'), { digest: digestOf(2), bridgedFromV1: null });
  await v2.putManifest(manifest('r/a', 3), [], 'br', 'c'.repeat(64));
  t.equal(await v2.deleteBridgedTag('r/a', 'br'), true);
  t.equal(await v2.resolveTag('r/a', 'br'), undefined);

  t.same(await v2.tagForPull('r/a', 'none'), { digest: null, bridgedFromV1: null, v1ImageId: null, manifest: undefined });
  await db.run(putV1Tag, 'r/a', 'latest', 'f'.repeat(64));
  t.same(await v2.tagForPull('r/a', 'latest'), {
    digest: digestOf(1),
    bridgedFromV1: null,
    v1ImageId: 'f'.repeat(64),
    manifest: await v2.taggedManifest('r/a', 'latest'),
  });
  t.ok((await v2.tagForPull('r/a', 'latest')).manifest, 'with the manifest the tag names');

  for (const tag of ['b', 'a', 'B', 'z']) await v2.putManifest(manifest('r/a', 1), [], tag);
  t.same(await v2.listTags('r/a', '', 100), ['B', 'a', 'b', 'latest', 'old', 'z'], 'byte order');
  t.same(await v2.listTags('r/a', 'a', 2), ['b', 'latest']);
  t.equal(await v2.deleteTag('r/a', 'z'), true);
  t.equal(await v2.deleteTag('r/a', 'z'), false);
  t.same(await v2.listTags('r/b', '', 10), []);
});

forEachIndex(t, 'catalog: repositories with v2 content, paged, by visible names', async (t, db) => {
  const { core, v2 } = open(db);
  await core.ensureRepository('empty/repo'); // no content: not listed
  await v2.putManifest(manifest('team/app', 1), []);
  await v2.linkBlob('team/db', digestOf(2)); // a blob link alone counts
  await v2.putManifest(manifest('other/x_y', 3), []);
  await v2.putManifest(manifest('otherxy', 4), []);
  t.same(await v2.catalog('', 100), ['other/x_y', 'otherxy', 'team/app', 'team/db']);
  t.same(await v2.catalog('', 2), ['other/x_y', 'otherxy']);
  t.same(await v2.catalog('otherxy', 1), ['team/app']);
  t.same(await v2.catalog('', 10, [{ prefix: 'team/' }]), ['team/app', 'team/db']);
  t.same(await v2.catalog('', 10, [{ prefix: 'team/', regex: 'team/d.*' }]), ['team/db']);
  t.same(await v2.catalog('', 10, [{ exact: 'other/x_y' }]), ['other/x_y'], 'LIKE wildcards in a name are literal');
  t.same(await v2.catalog('', 10, [{ prefix: 'team/' }, { exact: 'otherxy' }]), ['otherxy', 'team/app', 'team/db']);
});

forEachIndex(t, 'inside a caller transaction: its work commits or rolls back with it', async (t, db) => {
  const { core, v2 } = open(db);
  await t.rejects(
    core.transaction(async (tx) => {
      await tx(v2).putManifest(manifest('r/t', 1), [], 'latest');
      await tx(v2).linkBlob('r/t', digestOf(2));
      t.equal(await tx(v2).resolveTag('r/t', 'latest'), digestOf(1), 'seen inside');
      throw new Error('abort');
    }),
    /abort/,
  );
  t.equal(await v2.getManifest('r/t', digestOf(1)), undefined);
  t.equal(await v2.isBlobLinked('r/t', digestOf(2)), false);
  await core.transaction(async (tx) => {
    await tx(v2).putManifest(manifest('r/t', 1), [], 'latest');
  });
  t.equal(await v2.resolveTag('r/t', 'latest'), digestOf(1));
});
