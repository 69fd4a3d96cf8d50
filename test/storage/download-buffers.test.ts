import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import t from 'tap';
import { DownloadBuffers, MAX_BUFFER } from '../../src/storage/download-buffers';
import { pipeFile } from '../../src/storage/file-reader';
import { tempDir } from '../helpers/server';

const KiB = 1024;
const MiB = 1024 * KiB;
const sizes = (g: { buffers: Buffer[] }) => g.buffers.map((b) => b.length);

t.test('a transfer gets what it asks for while the budget has room, then fewer and smaller buffers', async (t) => {
  const M = MAX_BUFFER;
  const pool = new DownloadBuffers(4 * M + 4 * KiB, 0);
  const first = await pool.take(10 * M, 3);
  t.same(sizes(first), [M, M, M], 'three of the largest size');
  const second = await pool.take(10 * M, 3);
  t.same(sizes(second), [M / 2, M / 2], 'one largest left (and 4 KiB): two of half that rather than one');
  t.same(sizes(await pool.take(3 * KiB, 1)), [4 * KiB], 'a small file gets a buffer its own size');
  t.equal(pool.stats.used, 4 * M + 4 * KiB, 'counted');
});

t.test('past the budget a transfer waits for bytes to come back, in turn, and never goes over', async (t) => {
  const pool = new DownloadBuffers(128 * KiB, 64 * KiB);
  const a = await pool.take(MAX_BUFFER, 2);
  t.same(sizes(a), [64 * KiB, 64 * KiB]);
  const order: string[] = [];
  const b = pool.take(MAX_BUFFER, 2).then((g) => (order.push('b'), g));
  const c = pool.take(MAX_BUFFER, 2).then((g) => (order.push('c'), g));
  await new Promise((r) => setImmediate(r));
  t.same(order, [], 'both wait');
  t.equal(pool.stats.waiting, 2);
  pool.give(a, a.buffers);
  const [gb, gc] = await Promise.all([b, c]);
  t.same(order, ['b', 'c'], 'in the order they came');
  t.same([sizes(gb), sizes(gc)], [[64 * KiB], [64 * KiB]], 'one smallest buffer each');
  t.equal(pool.stats.used, 128 * KiB);
  pool.give(gb, gb.buffers);
  pool.give(gc, gc.buffers);
  t.equal(pool.stats.used, 0);
  t.equal(pool.stats.idle, 64 * KiB, 'keeps no more than keepIdle for reuse');
  t.equal(pool.release(), 64 * KiB, 'release lets go of the idle buffers');
  t.equal(pool.stats.idle, 0);
});

t.test('many concurrent transfers under a small budget: every byte in order, the budget never exceeded', async (t) => {
  const data = randomBytes(3 * MiB + 123);
  const file = path.join(tempDir(t), 'blob');
  writeFileSync(file, data);
  const want = createHash('sha256').update(data).digest('hex');
  const pool = new DownloadBuffers(256 * KiB, 128 * KiB);
  let most = 0;
  const transfer = async () => {
    const hash = createHash('sha256');
    const out = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _enc, cb) {
        most = Math.max(most, pool.stats.used);
        hash.update(chunk);
        setImmediate(cb);
      },
    });
    await pipeFile(await fs.open(file, 'r'), { start: 0, end: data.length - 1 }, out, pool);
    return hash.digest('hex');
  };
  const digests = await Promise.all(Array.from({ length: 20 }, transfer));
  t.same(new Set(digests), new Set([want]), 'all 20 got the file');
  t.ok(most <= 256 * KiB, `at most the budget held (${most / KiB} KiB)`);
  t.equal(pool.stats.used, 0, 'every byte given back');
  t.equal(pool.stats.waiting, 0);
});

t.test('a failed transfer gives its bytes back but not its buffers', async (t) => {
  const data = randomBytes(2 * MiB);
  const file = path.join(tempDir(t), 'blob');
  writeFileSync(file, data);
  const pool = new DownloadBuffers(4 * MiB, 4 * MiB);
  const out = new Writable({ write: (_c, _e, cb) => cb(new Error('socket gone')) });
  out.on('error', () => undefined);
  await t.rejects(pipeFile(await fs.open(file, 'r'), { start: 0, end: data.length - 1 }, out, pool));
  t.equal(pool.stats.used, 0);
  t.equal(pool.stats.idle, 0, 'a write may still hold one: none is reused');
});
