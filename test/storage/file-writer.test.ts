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
  const body = [...chunks(5 * MiB + 123), Buffer.alloc(600 * 1024, 7)]; // the last one spans three slabs
  const h = await fs.open(file, 'r+');
  const n = await writeStreamAt(h, 4, Readable.from(body), 1 * MiB);
  await h.close();
  t.equal(n, 5 * MiB + 123 + 600 * 1024);
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
    write: (b: Buffer, o: number, l: number, p: number) => real.write(b, o, l, p),
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
  const noFlush = { write: (b: Buffer, o: number, l: number, p: number) => quiet.write(b, o, l, p), datasync: async () => void calls++ } as unknown as FileHandle;
  await writeStreamAt(noFlush, 0, Readable.from(chunks(4 * MiB)), 0);
  t.equal(calls, 0, 'writeback off: no datasync');
  await quiet.close();
});

t.test('a partial write is continued where it stopped', async (t) => {
  const file = path.join(tempDir(t), 'f');
  const real = await fs.open(file, 'w+');
  // Take at most 1000 bytes per call, as a regular file may on a full or slow device.
  const handle = {
    write: (b: Buffer, o: number, l: number, p: number) => real.write(b, o, Math.min(l, 1000), p),
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
    write: async (b: Buffer, o: number, l: number, p: number) => {
      pending++;
      await new Promise((r) => setTimeout(r, 20));
      const r = await real.write(b, o, l, p);
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
    write: async () => {
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    },
    datasync: async () => undefined,
  } as unknown as FileHandle;
  const body = Readable.from(chunks(4 * MiB));
  await t.rejects(writeStreamAt(handle, 0, body), { code: 'ENOSPC' });
  t.ok(body.destroyed, 'body destroyed');
});

t.test('bytes that arrived during a write go out when it lands, without waiting for more', async (t) => {
  const file = path.join(tempDir(t), 'f');
  const real = await fs.open(file, 'w+');
  const writes: number[] = [];
  let release!: () => void;
  const firstWriteHeld = new Promise<void>((r) => (release = r));
  const handle = {
    write: async (b: Buffer, o: number, l: number, p: number) => {
      writes.push(l);
      if (writes.length === 1) await firstWriteHeld;
      return real.write(b, o, l, p);
    },
    datasync: () => real.datasync(),
  } as unknown as FileHandle;
  const body = new PassThrough();
  const done = writeStreamAt(handle, 0, body);
  body.write(Buffer.alloc(10, 1)); // written at once
  await new Promise((r) => setTimeout(r, 10));
  body.write(Buffer.alloc(20, 2)); // waits for the first write...
  body.write(Buffer.alloc(30, 3));
  await new Promise((r) => setTimeout(r, 10));
  release();
  await new Promise((r) => setTimeout(r, 20)); // ...then goes out while the body is idle
  t.same(writes, [10, 50], 'the 50 bytes that waited are written as one, before the body ends');
  body.end();
  t.equal(await done, 60);
  await real.close();
  t.same(readFileSync(file), Buffer.concat([Buffer.alloc(10, 1), Buffer.alloc(20, 2), Buffer.alloc(30, 3)]));
});

t.test('concurrent writers share the slab pool without mixing their bytes', async (t) => {
  const dir = tempDir(t);
  const bodies = [1, 2, 3, 4].map((k) => chunks(k * MiB + k * 777));
  for (let round = 0; round < 2; round++) {
    const files = bodies.map((_, i) => path.join(dir, `f${round}-${i}`));
    await Promise.all(
      bodies.map(async (body, i) => {
        const h = await fs.open(files[i], 'w+');
        // A slow disk for some writers, so their slabs stay out while the others take and return theirs.
        const handle = {
          write: async (b: Buffer, o: number, l: number, p: number) => {
            if (i % 2) await new Promise((r) => setTimeout(r, 1));
            return h.write(b, o, l, p);
          },
          datasync: () => h.datasync(),
        } as unknown as FileHandle;
        t.equal(await writeStreamAt(handle, 0, Readable.from(body)), body.reduce((n, c) => n + c.length, 0));
        await h.close();
      }),
    );
    files.forEach((f, i) => t.equal(sha(readFileSync(f)), sha(bodies[i]), `round ${round}, writer ${i}: every byte its own`));
  }
});
