import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { pipeFile } from '../../src/storage/file-reader';
import { tempDir } from '../helpers/server';

const MiB = 1024 * 1024;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function fileOf(t: Test, data: Buffer): string {
  const file = path.join(tempDir(t), 'blob');
  writeFileSync(file, data);
  return file;
}

/** A slow consumer that copies nothing: it keeps the chunks it was given and checks them later. */
function collector(delayMs: number): Writable & { chunks: Buffer[] } {
  const chunks: Buffer[] = [];
  const w = new Writable({
    highWaterMark: 1,
    write(chunk: Buffer, _enc, cb) {
      chunks.push(Buffer.from(chunk)); // copy now: the writer may reuse its buffer after cb
      setTimeout(cb, delayMs);
    },
  });
  return Object.assign(w, { chunks });
}

t.test('writes exactly the range, in order, across buffer reuse', async (t) => {
  const data = randomBytes(5 * MiB + 777);
  const file = fileOf(t, data);
  for (const range of [
    { start: 0, end: data.length - 1 },
    { start: 1, end: 3 * MiB + 5 },
    { start: data.length - 1, end: data.length - 1 },
  ]) {
    const out = collector(1);
    await pipeFile(await fs.open(file, 'r'), range, out);
    t.equal(sha(Buffer.concat(out.chunks)), sha(data.subarray(range.start, range.end + 1)), `bytes ${range.start}-${range.end}`);
  }
});

t.test('reads ahead: reads in flight while a chunk is written, every byte in order', async (t) => {
  const data = randomBytes(6 * MiB + 3);
  const handle = await fs.open(fileOf(t, data), 'r');
  const real = handle.read.bind(handle);
  let reading = 0;
  let most = 0;
  const counted = async (buffer: Buffer, offset: number, length: number, position: number) => {
    most = Math.max(most, ++reading);
    try {
      return await real(buffer, offset, length, position);
    } finally {
      reading--;
    }
  };
  Object.assign(handle, { read: counted });
  const out = collector(5); // slower than the reads
  await pipeFile(handle, { start: 0, end: data.length - 1 }, out);
  t.ok(most >= 2 && most <= 3, `reads overlap, one per buffer at most (three per transfer): ${most} at once`);
  t.equal(sha(Buffer.concat(out.chunks)), sha(data));
});

t.test('a file shorter than the range rejects and closes the file', async (t) => {
  const file = fileOf(t, randomBytes(1000));
  const handle = await fs.open(file, 'r');
  await t.rejects(pipeFile(handle, { start: 0, end: 1999 }, collector(0)), /file ended at byte 1000/);
  await t.rejects(handle.stat(), { code: 'EBADF' }, 'handle closed');
});

t.test('the consumer closing mid-way rejects and closes the file', async (t) => {
  const file = fileOf(t, randomBytes(4 * MiB));
  const handle = await fs.open(file, 'r');
  const out = new PassThrough({ highWaterMark: 1 });
  out.once('data', () => out.destroy()); // takes one chunk, then goes away
  await t.rejects(pipeFile(handle, { start: 0, end: 4 * MiB - 1 }, out));
  await t.rejects(handle.stat(), { code: 'EBADF' }, 'handle closed');
});

t.test('over HTTP: a client that disconnects mid-download leaves the server serving', async (t) => {
  const data = randomBytes(64 * MiB);
  const file = fileOf(t, data);
  const results: string[] = [];
  const server = http.createServer(async (req, res) => {
    res.writeHead(200, { 'content-length': String(data.length) });
    try {
      await pipeFile(await fs.open(file, 'r'), { start: 0, end: data.length - 1 }, res);
      res.end();
      results.push('sent');
    } catch {
      res.destroy();
      results.push('aborted');
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => server.close());
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;

  await new Promise<void>((resolve) => {
    http.get(url, (res) => {
      res.once('data', () => {
        res.destroy();
        resolve();
      });
    });
  });
  const whole = await new Promise<Buffer>((resolve, reject) => {
    http
      .get(url, (res) => {
        const parts: Buffer[] = [];
        res.on('data', (c: Buffer) => parts.push(c));
        res.on('end', () => resolve(Buffer.concat(parts)));
      })
      .on('error', reject);
  });
  t.equal(sha(whole), sha(data), 'second client gets every byte');
  await new Promise((r) => setTimeout(r, 100));
  t.same(results.sort(), ['aborted', 'sent']);
});
