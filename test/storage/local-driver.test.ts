import { readdirSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import t from 'tap';
import { parseConfig } from '../../src/config/load';
import { createDriver } from '../../src/storage/factory';
import { LocalDriver } from '../../src/storage/local-driver';
import type { AppendOptions, UploadWorkers } from '../../src/storage/upload-workers';
import { tempDir } from '../helpers/server';
import { driverSuite } from './driver-suite';

t.test('local driver conformance', async (t) => {
  driverSuite(t, async (t) => {
    const d = new LocalDriver({ root: tempDir(t), fsync: true });
    await d.init();
    return d;
  });
});

t.test('local layout: content-addressed file, nothing left in uploads/', async (t) => {
  const root = tempDir(t);
  const d = new LocalDriver({ root, fsync: true });
  await d.init();
  let s = await d.startUpload('abc');
  s = await d.appendUpload('abc', s, 0, Readable.from([Buffer.from('hello')]));
  const hex = '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';
  const key = await d.commitUpload('abc', s, 5, hex);
  t.equal(key, `blobs/sha256/2c/${hex}`);
  t.same(readdirSync(path.join(root, 'uploads')), []);
});

t.test('storage.local.directWrites (and its variable) reaches the upload workers; off by default', async (t) => {
  const asked = async (env: NodeJS.ProcessEnv) => {
    const config = parseConfig('', { ...env, REGISTRY_STORAGE_LOCAL_ROOT: tempDir(t) });
    const driver = (await createDriver(config)) as LocalDriver;
    t.teardown(() => driver.close());
    const workers = (driver as unknown as { workers: UploadWorkers }).workers;
    const seen: AppendOptions[] = [];
    const append = workers.append.bind(workers);
    workers.append = (key, opts, body) => (seen.push(opts), append(key, opts, body));
    const s = await driver.startUpload('u');
    await driver.appendUpload('u', s, 0, Readable.from([Buffer.alloc(8192, 1)]));
    return seen.map((o) => o.direct);
  };
  t.same(await asked({}), [false], 'default: through the page cache');
  t.same(await asked({ REGISTRY_STORAGE_LOCAL_DIRECT_WRITES: 'true' }), [true], 'REGISTRY_STORAGE_LOCAL_DIRECT_WRITES=true: O_DIRECT');
});
