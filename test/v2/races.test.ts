import t from 'tap';
import { testIndexDriver } from '../helpers/index-db';
import { startRegistry } from '../helpers/server';
import { buildImage, pushImage } from '../helpers/v2';

// A tag is resolved to its manifest in one read: a delete of that manifest committing in between never
// turns a tag that existed into MANIFEST_UNKNOWN (the index is asynchronous: two reads could be split). On
// SQLite the read, started first, always comes first; on PostgreSQL the two run on connections of their own
// and the delete may come first: then the tag is rightly unknown.

t.test('resolving a tag while its manifest is deleted: the manifest as it was, or none, never half', async (t) => {
  const reg = await startRegistry(t);
  const v2 = reg.app.registry.v2;
  for (let round = 0; round < 10; round++) {
    const digest = await pushImage(reg.url, 'race/tags', 'v1', buildImage());
    const [resolved, deleted] = await Promise.allSettled([v2.resolve('race/tags', 'v1'), v2.deleteManifest('race/tags', digest)]);
    t.equal(deleted.status, 'fulfilled');
    if (resolved.status === 'fulfilled' || testIndexDriver === 'sqlite') {
      t.equal(resolved.status === 'fulfilled' && resolved.value.digest, digest, `round ${round}: the tag's manifest, read before the delete`);
    } else {
      t.match(resolved.reason, { code: 'MANIFEST_UNKNOWN' }, `round ${round}: read after the delete: no manifest`);
    }
  }
});
