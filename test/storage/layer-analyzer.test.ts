import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import t from 'tap';
import { openDatabase } from '../../src/index/db';
import { MetadataIndex } from '../../src/index/metadata-index';
import { BlobStore } from '../../src/storage/blob-store';
import { analyzeStream, LayerAnalyzer } from '../../src/storage/layer-analyzer';
import { LocalDriver } from '../../src/storage/local-driver';
import { UploadWorkers } from '../../src/storage/upload-workers';
import { tempDir } from '../helpers/server';
import { tarOf } from '../helpers/v1';

// The v1 layer analysis for the bridge (layer-analyzer.ts): compression by magic bytes, the sha256 of the
// uncompressed tar, empty and invalid layers; on the upload workers in the pass that stores the bytes, and on
// the main thread for drivers that do not hash where they write (S3).

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const pieces = (b: Buffer, n: number) => Array.from({ length: Math.ceil(b.length / n) }, (_, i) => b.subarray(i * n, (i + 1) * n));

/** A client slower than zlib: one piece every few milliseconds. */
async function* slowly(b: Buffer, n = 64 * 1024): AsyncGenerator<Buffer> {
  for (const p of pieces(b, n)) {
    await new Promise((r) => setTimeout(r, 5));
    yield p;
  }
}

const tar = tarOf([{ name: 'a.bin', data: randomBytes(700_000) }, { name: 'b.txt', data: Buffer.from('hello') }]);
const gz = gzipSync(tar);

t.test('analyzeStream: every kind, in any chunking', async (t) => {
  for (const n of [1, 1000, 65536, 1 << 20]) {
    t.same(await analyzeStream(pieces(gz.subarray(0, n === 1 ? 300 : 3000), n)), { format: 'invalid' }, `a cut gzip is invalid (chunks of ${n})`);
    if (n === 1) continue;
    t.same(await analyzeStream(pieces(gz, n)), { format: 'gzip', diffIdHex: sha(tar) }, `gzip, chunks of ${n}`);
    t.same(await analyzeStream(pieces(tar, n)), { format: 'tar' }, `plain tar, chunks of ${n}`);
  }
  t.same(await analyzeStream([gzipSync(tarOf([]))]), { format: 'empty', diffIdHex: sha(Buffer.alloc(1024)) }, 'gzip of an empty tar');
  t.same(await analyzeStream([Buffer.alloc(1024)]), { format: 'empty' }, 'an empty plain tar');
  t.same(await analyzeStream([]), { format: 'empty' }, 'no bytes at all');
  t.same(await analyzeStream([randomBytes(10_000)]), { format: 'invalid' }, 'random bytes');
  t.same(await analyzeStream([gzipSync(randomBytes(10_000))]), { format: 'invalid' }, 'a gzip of something that is no tar');
  t.same(await analyzeStream([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1])]), { format: 'xz' });
  t.same(await analyzeStream([Buffer.from('BZh91AY&SY')]), { format: 'bzip2' });
  t.same(await analyzeStream([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0, 0])]), { format: 'zstd' });
});

t.test('an analysis that holds the upload back past its budget gives up; every chunk still comes back', async (t) => {
  // 1 GiB of zeros in 4 MiB gzip members: little to send, much to inflate.
  const member = gzipSync(Buffer.alloc(4 << 20));
  const a = new LayerAnalyzer();
  let back = 0;
  const n = 256;
  for (let i = 0; i < n; i++) a.write(member, () => back++); // as fast as a client could send them
  t.equal(await a.end(), undefined, 'no verdict');
  for (let i = 0; back < n && i < 500; i++) await new Promise((r) => setTimeout(r, 10));
  t.equal(back, n, 'every chunk called back');
});

t.test('on the upload workers, in the pass that writes and hashes the bytes', async (t) => {
  const workers = new UploadWorkers(1);
  t.teardown(() => workers.close());
  const file = path.join(tempDir(t), 'staged');
  writeFileSync(file, '');
  const r = await workers.append('u', { file, position: 0, fsync: false, writebackEvery: 0, hashPrefix: Buffer.from('{}\n'), analyzeLayer: true }, Readable.from(slowly(gz)));
  t.same(r.layer, { format: 'gzip', diffIdHex: sha(tar) }, 'gzip layer from a client slower than zlib: its diff id');
  t.equal(sha(readFileSync(file)), sha(gz), 'the bytes written as they came');
  t.equal(await workers.digest('u', file, gz.length), sha(gz));
  const bad = `${file}-bad`;
  writeFileSync(bad, '');
  const b = await workers.append('b', { file: bad, position: 0, fsync: false, writebackEvery: 0, analyzeLayer: true }, Readable.from([randomBytes(300_000)]));
  t.same(b.layer, { format: 'invalid' });
  // A client faster than zlib: the analysis gives up rather than hold the upload back; every byte is written.
  const big = gzipSync(Buffer.concat([tarOf([{ name: 'x', data: Buffer.alloc(40 << 20, 'abcdefgh') }])]));
  const many = gzipSync(Buffer.concat(Array.from({ length: 8 }, () => tarOf([{ name: 'r', data: randomBytes(4 << 20) }]))));
  for (const [what, body] of [['compressible', big], ['incompressible', many]] as const) {
    const f = `${file}-${what}`;
    writeFileSync(f, '');
    const fast = await workers.append(`fast-${what}`, { file: f, position: 0, fsync: false, writebackEvery: 0, analyzeLayer: true }, Readable.from(pieces(body, 256 * 1024)));
    t.ok(fast.layer === undefined || fast.layer.diffIdHex !== undefined, `${what}: no verdict, or a whole one (${fast.layer ? 'kept up' : 'gave up'})`);
    t.equal(sha(readFileSync(f)), sha(body), `${what}: the bytes written whole either way`);
  }
  const plain = await workers.append('p', { file: `${file}-p`, position: 0, fsync: false, writebackEvery: 0 }, Readable.from([gz]));
  t.equal(plain.layer, undefined, 'not asked, not analyzed');
});

t.test('BlobStore ingest: on the workers (local) or as the bytes pass (drivers without appendUploadPrefixed)', async (t) => {
  const root = tempDir(t);
  const driver = new LocalDriver({ root: path.join(root, 'blobs'), fsync: false });
  await driver.init();
  t.teardown(() => driver.close?.());
  const index = new MetadataIndex(openDatabase(path.join(root, 'index.db')));
  const store = new BlobStore(driver, index);
  let seen: unknown;
  const a = await store.ingest(Readable.from(slowly(gz)), { hashPrefix: Buffer.from('{}\n'), analyzeLayer: true, onStored: async (_tx, _b, _p, layer) => void (seen = layer) });
  t.same(a.layer, { format: 'gzip', diffId: `sha256:${sha(tar)}` });
  t.same(seen, a.layer, 'onStored has it, in the transaction that records the blob');
  const without = Object.assign(Object.create(driver) as LocalDriver, { appendUploadPrefixed: undefined });
  const b = await new BlobStore(without, index).ingest(Readable.from(slowly(tar)), { hashPrefix: Buffer.from('{}\n'), analyzeLayer: true });
  t.same(b.layer, { format: 'tar', diffId: `sha256:${sha(tar)}` }, 'a plain tar: its diff id is its own digest');
  await store.settle();
  index.close();
});
