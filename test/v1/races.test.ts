import { indexRows, testIndexDriver } from '../helpers/index-db';
import t from 'tap';
import { startRegistry } from '../helpers/server';
import { imageChain, pushV1 } from '../helpers/v1';

// A v1 tag is written in the transaction that checks its image: a repository deleted at the same moment
// is never brought back holding a tag of an image that is gone.

t.test('tagging while the repository is deleted: never a tag without its image', async (t) => {
  const reg = await startRegistry(t);
  const v1 = reg.app.registry.v1;
  const outcomes = new Set<string>();
  for (let round = 0; round < 20; round++) {
    const chain = imageChain(1);
    const top = chain[0]!;
    await pushV1(reg.url, 'race/app', 'base', chain);
    const [tagged, deleted] = await Promise.allSettled([
      v1.putTag('race/app', `r${round}`, Buffer.from(JSON.stringify(top.id)), 'test'),
      v1.deleteRepository('race/app'),
    ]);
    outcomes.add(`${tagged.status} ${deleted.status}`);
    const dangling = await indexRows(reg.app.registry.index).value('SELECT count(*) FROM v1_tags t WHERE NOT EXISTS (SELECT 1 FROM v1_images i WHERE i.repo = t.repo AND i.id = t.image_id)');
    t.equal(dangling, 0, `round ${round}: no tag without its image`);
    if (tagged.status === 'fulfilled' && deleted.status === 'fulfilled') await v1.deleteRepository('race/app').catch(() => undefined);
  }
  t.comment(`outcomes: ${[...outcomes].join(', ')}`);
});

t.test('reading the image list while the repository is deleted: the list as it was, or none, never an empty one', async (t) => {
  const reg = await startRegistry(t);
  const v1 = reg.app.registry.v1;
  const outcomes = new Set<string>();
  for (let round = 0; round < 10; round++) {
    const chain = imageChain(1);
    await pushV1(reg.url, 'race/list', 'base', chain);
    const [listed, deleted] = await Promise.allSettled([v1.getImageList('race/list'), v1.deleteRepository('race/list')]);
    t.equal(deleted.status, 'fulfilled');
    // On SQLite the read, started first, comes first; on PostgreSQL the two run on connections of their own.
    if (listed.status === 'fulfilled' || testIndexDriver === 'sqlite') t.same(listed.status === 'fulfilled' && listed.value.map((e) => e.id), [chain[0]!.id], `round ${round}: read before the delete, the whole list`);
    else t.match(listed.reason, { code: 'NOT_FOUND' }, `round ${round}: read after the delete, no list`);
    outcomes.add(listed.status);
  }
  t.comment(`outcomes: ${[...outcomes].join(', ')}`);
});
