import { createHash, randomBytes } from 'node:crypto';
import { promises as fs, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { PassThrough, Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { DownloadBuffers, MAX_BUFFER } from '../../src/storage/download-buffers';
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
  const data = randomBytes(5 * MAX_BUFFER + 777);
  const file = fileOf(t, data);
  for (const range of [
    { start: 0, end: data.length - 1 },
    { start: 1, end: 3 * MAX_BUFFER + 5 },
    { start: data.length - 1, end: data.length - 1 },
  ]) {
    const out = collector(1);
    await pipeFile(await fs.open(file, 'r'), range, out);
    t.equal(sha(Buffer.concat(out.chunks)), sha(data.subarray(range.start, range.end + 1)), `bytes ${range.start}-${range.end}`);
  }
});

/** A handle whose reads are counted: the most in flight at once. */
async function countingHandle(file: string) {
  const handle = await fs.open(file, 'r');
  const real = handle.read.bind(handle);
  const counts = { reading: 0, most: 0 };
  const counted = async (buffer: Buffer, offset: number, length: number, position: number) => {
    counts.most = Math.max(counts.most, ++counts.reading);
    try {
      return await real(buffer, offset, length, position);
    } finally {
      counts.reading--;
    }
  };
  return { handle: Object.assign(handle, { read: counted }), counts };
}

t.test('reads ahead: two reads in flight while a chunk is written, one past 16 transfers at once', async (t) => {
  const data = randomBytes(6 * MAX_BUFFER + 3);
  const file = fileOf(t, data);
  const whole = { start: 0, end: data.length - 1 };
  const alone = await countingHandle(file);
  const out = collector(5); // slower than the reads
  await pipeFile(alone.handle, whole, out);
  t.equal(alone.counts.most, 2, 'two reads at once');
  t.equal(sha(Buffer.concat(out.chunks)), sha(data), 'every byte, in order');

  // Sixteen transfers held up by consumers that do not take their first chunk yet: the next one reads
  // one chunk at a time, as a transfer did before reading ahead. (A budget of their own, larger than the
  // process's: this is about the count of transfers, not about bytes.)
  const roomy = new DownloadBuffers(17 * 3 * MAX_BUFFER, 0);
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const stalled = Array.from({ length: 16 }, async () => {
    const held = new Writable({ write: (_chunk, _enc, cb) => void released.then(() => cb()) });
    return pipeFile(await fs.open(file, 'r'), whole, held, roomy);
  });
  await new Promise((r) => setTimeout(r, 50));
  const busy = await countingHandle(file);
  const busyOut = collector(1);
  await pipeFile(busy.handle, whole, busyOut, roomy);
  t.equal(busy.counts.most, 1, 'the seventeenth: one read at a time');
  t.equal(sha(Buffer.concat(busyOut.chunks)), sha(data), 'every byte, in order');
  release();
  await Promise.all(stalled);
  const after = await countingHandle(file);
  await pipeFile(after.handle, whole, collector(5));
  t.equal(after.counts.most, 2, 'once they are done, reading ahead again');
});

t.test('a file shorter than the range rejects and closes the file', async (t) => {
  const file = fileOf(t, randomBytes(1000));
  const handle = await fs.open(file, 'r');
  await t.rejects(pipeFile(handle, { start: 0, end: 1999 }, collector(0)), /file ended at byte 1000/);
  await t.rejects(handle.stat(), { code: 'EBADF' }, 'handle closed');
});

t.test('the consumer closing mid-way rejects and closes the file', async (t) => {
  const file = fileOf(t, randomBytes(4 * MAX_BUFFER));
  const handle = await fs.open(file, 'r');
  const out = new PassThrough({ highWaterMark: 1 });
  out.once('data', () => out.destroy()); // takes one chunk, then goes away
  await t.rejects(pipeFile(handle, { start: 0, end: 4 * MAX_BUFFER - 1 }, out));
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
