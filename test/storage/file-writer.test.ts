import { createHash } from 'node:crypto';
import { promises as fs, readFileSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import t from 'tap';
import { writeStreamAt } from '../../src/storage/file-writer';
import { tempDir } from '../helpers/server';

const MiB = 1024 * 1024;

/** Deterministic chunks of uneven sizes (1 byte .. ~200 KiB), `total` bytes in all. */
function chunks(total: number): Buffer[] {
  const out: Buffer[] = [];
  let left = total;
  for (let i = 0; left > 0; i++) {
    const n = Math.min(left, 1 + ((i * 7919) % (200 * 1024)));
    out.push(Buffer.alloc(n, i % 251));
    left -= n;
  }
  return out;
}

const sha = (b: Buffer | Buffer[]) => createHash('sha256').update(Buffer.concat([b].flat())).digest('hex');

t.test('writes every byte in order from the given position', async (t) => {
  const file = path.join(tempDir(t), 'f');
  await fs.writeFile(file, 'head');
  const body = chunks(5 * MiB + 123);
  const h = await fs.open(file, 'r+');
  const n = await writeStreamAt(h, 4, Readable.from(body), 1 * MiB);
  await h.close();
  t.equal(n, 5 * MiB + 123);
  const got = readFileSync(file);
  t.equal(got.subarray(0, 4).toString(), 'head');
  t.equal(sha(got.subarray(4)), sha(body));
});

t.test('starts background writeback every N bytes, never two at once, and waits for them', async (t) => {
  const file = path.join(tempDir(t), 'f');
  const real = await fs.open(file, 'w+');
  let syncs = 0;
  let running = 0;
  let overlapped = false;
  const handle = {
    writev: (b: Buffer[], p: number) => real.writev(b, p),
    datasync: async () => {
      syncs++;
      running++;
      if (running > 1) overlapped = true;
      await new Promise((r) => setTimeout(r, 5));
      running--;
    },
  } as unknown as FileHandle;
  await writeStreamAt(handle, 0, Readable.from(chunks(8 * MiB)), 1 * MiB);
  t.ok(syncs >= 2 && syncs <= 8, `datasync ran ${syncs} times for 8 MiB at 1 MiB`);
  t.notOk(overlapped, 'one flush at a time');
  t.equal(running, 0, 'no flush left running');
  await real.close();

  const quiet = await fs.open(file, 'w+');
  let calls = 0;
  const noFlush = { writev: (b: Buffer[], p: number) => quiet.writev(b, p), datasync: async () => void calls++ } as unknown as FileHandle;
  await writeStreamAt(noFlush, 0, Readable.from(chunks(4 * MiB)), 0);
  t.equal(calls, 0, 'writeback off: no datasync');
  await quiet.close();
});

t.test('a partial writev is continued where it stopped', async (t) => {
  const file = path.join(tempDir(t), 'f');
  const real = await fs.open(file, 'w+');
  // Take at most 1000 bytes per call, as a regular file may on a full or slow device.
  const handle = {
    writev: (b: Buffer[], p: number) => {
      const first = Buffer.concat(b).subarray(0, 1000);
      return real.write(first, 0, first.length, p).then((r) => ({ bytesWritten: r.bytesWritten, buffers: b }));
    },
    datasync: () => real.datasync(),
  } as unknown as FileHandle;
  const body = chunks(300 * 1024);
  t.equal(await writeStreamAt(handle, 0, Readable.from(body)), 300 * 1024);
  await real.close();
  t.equal(sha(readFileSync(file)), sha(body));
});

t.test('a body error rejects once the started write has settled', async (t) => {
  const file = path.join(tempDir(t), 'f');
  const real = await fs.open(file, 'w+');
  let pending = 0;
  let maxPendingAtReject = -1;
  const handle = {
    writev: async (b: Buffer[], p: number) => {
      pending++;
      await new Promise((r) => setTimeout(r, 20));
      const r = await real.writev(b, p);
      pending--;
      return r;
    },
    datasync: () => real.datasync(),
  } as unknown as FileHandle;
  const body = new PassThrough();
  body.write(Buffer.alloc(1000, 1));
  setTimeout(() => body.destroy(new Error('client went away')), 5);
  await t.rejects(
    writeStreamAt(handle, 0, body).finally(() => (maxPendingAtReject = pending)),
    /client went away/,
  );
  t.equal(maxPendingAtReject, 0, 'no write still running when the promise rejects');
  await real.close();
});

t.test('a write error rejects and stops reading the body', async (t) => {
  const handle = {
    writev: async () => {
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    },
    datasync: async () => undefined,
  } as unknown as FileHandle;
  const body = Readable.from(chunks(4 * MiB));
  await t.rejects(writeStreamAt(handle, 0, body), { code: 'ENOSPC' });
  t.ok(body.destroyed, 'body destroyed');
});
