import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { defaultConfig } from '../../src/config/load';
import { runGarbageCollection } from '../../src/gc/run';
import { startRegistry, tempDir } from '../helpers/server';
import { blobOf, buildImage, pushBlob, pushImage } from '../helpers/v2';

// runGarbageCollection: what `npm run registry -- gc` runs, against the index and storage a config names.

t.test('an index that is not there, or is not an index, fails with a message and touches nothing', async (t) => {
  const dir = tempDir(t);
  const blobs = path.join(dir, 'blobs');
  const missing = defaultConfig({ index: { path: path.join(dir, 'nope.db') }, storage: { local: { root: blobs } } });
  await t.rejects(runGarbageCollection(missing), /no index at .*nope\.db/);
  t.notOk(existsSync(path.join(dir, 'nope.db')), 'no index was created');
  t.notOk(existsSync(blobs), 'storage untouched');

  writeFileSync(path.join(dir, 'junk.db'), randomBytes(8192));
  const junk = defaultConfig({ index: { path: path.join(dir, 'junk.db') }, storage: { local: { root: blobs } } });
  await t.rejects(runGarbageCollection(junk), /cannot open the index .*junk\.db: .*not a database/);
  t.notOk(existsSync(blobs), 'storage untouched');
});

t.test('a dry run reports exactly what the real run then removes, and removes nothing', async (t) => {
  const reg = await startRegistry(t, { gc: { delay: 0, interval: 0, untagged: 'delete' } });
  const keep = buildImage();
  await pushImage(reg.url, 'dry/a', 'v1', keep);
  for (let i = 0; i < 3; i++) {
    const gone = buildImage({ layers: 1 });
    await pushImage(reg.url, 'dry/b', `t${i}`, gone);
    await fetch(`${reg.url}/v2/dry/b/manifests/t${i}`, { method: 'DELETE' });
  }
  await pushBlob(reg.url, 'dry/c', blobOf(randomBytes(700)));
  const config = reg.config;
  await reg.close();

  const files = () => readdirSync(path.join(reg.dir, 'blobs', 'blobs', 'sha256'), { recursive: true }).length;
  const before = files();
  const progress: string[] = [];
  const dry = await runGarbageCollection(config, { dryRun: true, onProgress: (p) => progress.push(p.phase) });
  t.equal(files(), before, 'the dry run removed no file');
  t.ok(progress.includes('blobs') && progress.includes('links'), 'progress named the phases');
  const real = await runGarbageCollection(config);
  const counts = (r: typeof dry) => [r.manifests, r.links, r.blobs, r.bytes, r.staged, r.stray, r.strayBytes];
  t.same(counts(dry), counts(real), 'same manifests, links, blobs, bytes, staged and strays');
  t.same([dry.dryRun, real.dryRun], [true, false]);
  t.same([real.manifests, real.blobs], [3, 3 * 3 + 1], 'three untagged images (manifest, config, layer each) and the lonely blob');
  t.ok(files() < before, 'the real run removed files');
  t.same(counts(await runGarbageCollection(config, { dryRun: true })), [0, 0, 0, 0, 0, 0, 0], 'afterwards a dry run finds nothing');
});
