import t from 'tap';
import { MetadataIndex } from '../../src/index/metadata-index';
import { V1Index } from '../../src/index/v1-index';
import type { IndexDatabase } from '../../src/index/database';
import { forEachIndex } from '../helpers/index-db';

// The v1 index (images, tags, image lists) on both implementations (SQLite, PostgreSQL).

const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as const;
const idOf = (n: number) => n.toString(16).padStart(64, '0');

function open(db: IndexDatabase) {
  const core = new MetadataIndex(db);
  return { core, v1: new V1Index(db, core) };
}

/** A complete image `id` in `repo` with a layer of `size` bytes (digest `layer`). */
async function completeImage(v1: V1Index, repo: string, id: string, parent: string | null, layer: number, size = 10): Promise<void> {
  await v1.putV1ImageJson(repo, id, parent, digestOf(1000 + layer));
  await v1.setV1Layer(repo, id, digestOf(1000 + layer), digestOf(layer), size, `sum-${id}`);
  await v1.completeV1Image(repo, id, `sum-${id}`);
}

forEachIndex(t, 'images: json, layer, checksum, completion', async (t, db) => {
  const { core, v1 } = open(db);
  const id = idOf(1);
  t.equal(await v1.getV1Image('team/app', id), undefined);
  t.equal(await v1.putV1ImageJson('team/app', id, null, digestOf(1)), true);
  t.ok(await core.getRepository('team/app'), 'the repository is made with the image');
  t.same(await v1.getV1Image('team/app', id), {
    repo: 'team/app',
    id,
    parent: null,
    jsonDigest: digestOf(1),
    layerDigest: null,
    layerSize: null,
    checksum: null,
    complete: false,
    layerFormat: null,
    diffId: null,
  });
  t.equal(await v1.putV1ImageJson('team/app', id, null, digestOf(2)), true, 'in progress: the JSON is replaced');
  t.equal(await v1.setV1Layer('team/app', id, digestOf(1), digestOf(9), 5, 'sum'), false, 'the checksum covered another JSON');
  t.equal(await v1.setV1Layer('team/app', id, digestOf(2), digestOf(9), 5, 'sum', { format: 'gzip', diffId: digestOf(8) }), true);
  t.match(await v1.getV1Image('team/app', id), { layerDigest: digestOf(9), layerSize: 5, checksum: 'sum', layerFormat: 'gzip', diffId: digestOf(8) });
  t.equal(await v1.completeV1Image('team/app', id, 'other'), false, 'a wrong checksum does not complete it');
  t.equal(await v1.completeV1Image('team/app', id, 'sum'), true);
  t.equal(await v1.completeV1Image('team/app', id, 'sum'), false, 'complete once');
  t.equal((await v1.getV1Image('team/app', id))!.complete, true);
  t.equal(await v1.putV1ImageJson('team/app', id, null, digestOf(3)), false, 'a complete image is not replaced');
  t.equal((await v1.getV1Image('team/app', id))!.jsonDigest, digestOf(2));
  t.equal(await v1.setV1Layer('team/app', id, digestOf(2), digestOf(7), 5, 'sum'), false, 'nor its layer');
  t.equal(await v1.getV1Image('other/app', id), undefined, 'images are per repository');
});

forEachIndex(t, 'layers not analyzed yet: listed, counted, then recorded on every row', async (t, db) => {
  const { v1 } = open(db);
  await completeImage(v1, 'a/x', idOf(1), null, 3);
  await completeImage(v1, 'b/x', idOf(2), null, 3); // the same layer bytes in another repository
  await completeImage(v1, 'a/x', idOf(3), idOf(1), 1);
  await completeImage(v1, 'a/x', idOf(4), idOf(3), 2);
  await v1.setV1Layer('a/x', idOf(5), digestOf(1), digestOf(5), 1, 'x'); // no such image: nothing
  t.equal(await v1.countUnanalyzedLayers(), 3);
  t.same(await v1.unanalyzedLayers('', 2), [digestOf(1), digestOf(2)]);
  t.same(await v1.unanalyzedLayers(digestOf(2), 2), [digestOf(3)]);
  await v1.setLayerInfo(digestOf(3), 'tar', digestOf(33));
  t.match(await v1.getV1Image('a/x', idOf(1)), { layerFormat: 'tar', diffId: digestOf(33) });
  t.match(await v1.getV1Image('b/x', idOf(2)), { layerFormat: 'tar', diffId: digestOf(33) });
  await v1.setLayerInfo(digestOf(3), 'gzip', null);
  t.match(await v1.getV1Image('a/x', idOf(1)), { layerFormat: 'tar' }, 'a known format is kept');
  t.equal(await v1.countUnanalyzedLayers(), 2);
  t.same(await v1.unanalyzedLayers('', 10), [digestOf(1), digestOf(2)]);
});

forEachIndex(t, 'ancestry: the chain within the repository, cut at a cycle', async (t, db) => {
  const { v1 } = open(db);
  await completeImage(v1, 'a/x', idOf(1), null, 1);
  await completeImage(v1, 'a/x', idOf(2), idOf(1), 2);
  await completeImage(v1, 'a/x', idOf(3), idOf(2), 3);
  t.same(await v1.ancestry('a/x', idOf(3)), [idOf(3), idOf(2), idOf(1)]);
  t.same(await v1.ancestry('a/x', idOf(1)), [idOf(1)]);
  t.same(await v1.ancestry('b/x', idOf(3)), [], 'another repository does not have it');
  t.same(await v1.ancestry('a/x', idOf(9)), []);
  // An older version could leave a cycle (a parent written after its child): the chain stops where it repeats.
  await v1.putV1ImageJson('a/x', idOf(7), idOf(8), digestOf(7));
  await v1.putV1ImageJson('a/x', idOf(8), idOf(7), digestOf(8));
  t.same(await v1.ancestry('a/x', idOf(7)), [idOf(7), idOf(8)]);
});

forEachIndex(t, 'v1 tags: set, move, list, page, count, delete', async (t, db) => {
  const { core, v1 } = open(db);
  await v1.setV1Tag('team/app', 'latest', idOf(1), '{"a":1}');
  t.ok(await core.getRepository('team/app'), 'the repository is made with the tag');
  await v1.setV1Tag('team/app', 'latest', idOf(2), '{"a":2}');
  await v1.setV1Tag('team/app', '__proto__', idOf(3), '{}');
  await v1.setV1Tag('team/db', 'v1', idOf(4), '{}');
  t.same(await v1.getV1Tag('team/app', 'latest'), { imageId: idOf(2), meta: '{"a":2}' });
  t.equal(await v1.getV1Tag('team/app', 'nope'), undefined);
  const tags = await v1.listV1Tags('team/app');
  t.same(Object.entries(tags), [
    ['__proto__', idOf(3)],
    ['latest', idOf(2)],
  ]);
  t.same(await v1.listV1Tags('none'), {});
  t.equal(await v1.countV1Tags(), 3);
  t.same(await v1.v1TagsAfter('', '', 2), [
    { repo: 'team/app', tag: '__proto__' },
    { repo: 'team/app', tag: 'latest' },
  ]);
  t.same(await v1.v1TagsAfter('team/app', 'latest', 2), [{ repo: 'team/db', tag: 'v1' }]);
  t.same(await v1.v1TagsAfter('team/db', 'v1', 2), []);
  t.equal(await v1.deleteV1Tag('team/app', 'latest'), true);
  t.equal(await v1.deleteV1Tag('team/app', 'latest'), false);
  t.equal(await v1.countV1Tags(), 2);
});

forEachIndex(t, 'image lists: merged in order of first sight, checksums kept', async (t, db) => {
  const { core, v1 } = open(db);
  await core.ensureRepository('team/app');
  t.equal(await v1.getV1RepoImages('team/app'), undefined, 'never announced');
  t.equal(await v1.getV1RepoImages('none'), undefined, 'no such repository');
  await v1.mergeV1RepoImages('team/app', []);
  t.same(await v1.getV1RepoImages('team/app'), [], 'announced empty');
  await v1.mergeV1RepoImages('team/app', [{ id: idOf(2) }, { id: idOf(1), checksum: 'c1' }, { id: idOf(2), checksum: 'c2' }]);
  await v1.mergeV1RepoImages('team/app', [{ id: idOf(3) }, { id: idOf(1), checksum: 'other' }]);
  t.same(await v1.getV1RepoImages('team/app'), [{ id: idOf(2), checksum: 'c2' }, { id: idOf(1), checksum: 'c1' }, { id: idOf(3) }]);
  await v1.mergeV1RepoImages('new/repo', [{ id: idOf(1) }]);
  t.same(await v1.getV1RepoImages('new/repo'), [{ id: idOf(1) }], 'the repository is made with its list');
});

forEachIndex(t, 'repositories with an image or listing it, within the visible names', async (t, db) => {
  const { v1 } = open(db);
  for (const repo of ['a/one', 'b/one', 'b/two', 'c/one']) await completeImage(v1, repo, idOf(1), null, 1);
  await v1.putV1ImageJson('b/three', idOf(1), null, digestOf(1)); // not complete: not listed
  const all = [{ prefix: '' }];
  t.same(await v1.reposWithImage(idOf(1), all, 10), ['a/one', 'b/one', 'b/two', 'c/one']);
  t.same(await v1.reposWithImage(idOf(1), all, 2), ['a/one', 'b/one']);
  t.same(await v1.reposWithImage(idOf(2), all, 10), []);
  t.same(await v1.reposWithImage(idOf(1), [{ prefix: 'b/' }], 10), ['b/one', 'b/two']);
  t.same(await v1.reposWithImage(idOf(1), [{ exact: 'c/one' }, { prefix: 'a/' }], 10), ['a/one', 'c/one']);
  t.same(await v1.reposWithImage(idOf(1), [{ exact: 'c/one' }, { prefix: 'a/' }], 1), ['a/one'], 'the limit spans ranges');
  t.same(await v1.reposWithImage(idOf(1), [{ prefix: 'b/', regex: 'b/t[^/]*', like: 'b/t%' }], 10), ['b/two']);
  t.same(await v1.reposWithImage(idOf(1), [], 10), [], 'nothing visible');

  await v1.mergeV1RepoImages('x/listed', [{ id: idOf(5) }]);
  await v1.mergeV1RepoImages('y/listed', [{ id: idOf(6) }, { id: idOf(5) }]);
  t.same(await v1.reposListingImage(idOf(5), all, 10), ['x/listed', 'y/listed']);
  t.same(await v1.reposListingImage(idOf(5), [{ exact: 'y/listed' }], 10), ['y/listed']);
  t.same(await v1.reposListingImage(idOf(5), [{ prefix: 'y/', regex: 'y/l\\.isted|zzz' }], 10), [], 'the regex is the whole name');
  t.same(await v1.reposListingImage(idOf(5), [{ prefix: 'y/', regex: 'y/l.*d' }], 10), ['y/listed']);
});

forEachIndex(t, 'inside a transaction: rolled back with it', async (t, db) => {
  const { core, v1 } = open(db);
  await t.rejects(
    core.transaction(async (tx) => {
      await tx(v1).setV1Tag('gone/app', 'latest', idOf(1), '{}');
      await tx(v1).mergeV1RepoImages('gone/app', [{ id: idOf(1) }]);
      t.equal(await tx(v1).countV1Tags(), 1, 'seen inside');
      throw new Error('no');
    }),
    /no/,
  );
  t.equal(await v1.countV1Tags(), 0);
  t.equal(await v1.getV1RepoImages('gone/app'), undefined);
  t.equal(await core.getRepository('gone/app'), undefined);
});
