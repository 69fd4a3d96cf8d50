import { readdirSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { LocalDriver } from '../../src/storage/local-driver';
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
  const { Readable } = await import('node:stream');
  let s = await d.startUpload('abc');
  s = await d.appendUpload('abc', s, 0, Readable.from([Buffer.from('hello')]));
  const hex = '2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824';
  const key = await d.commitUpload('abc', s, 5, hex);
  t.equal(key, `blobs/sha256/2c/${hex}`);
  t.same(readdirSync(path.join(root, 'uploads')), []);
});
