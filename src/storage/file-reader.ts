import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { ByteRange } from './driver';

// A Readable allocates a buffer per chunk, and V8 answers that external memory with major GCs of the whole
// heap. Here a few buffers per transfer are reused, each once the socket has taken its bytes (the write
// callback), so a pull makes no garbage per byte. Two reads are in flight while a chunk is written, because
// a cold file reads faster on two of libuv's threads; past READ_AHEAD_TRANSFERS transfers, one, so that many
// downloads hold two buffers each (figures: BENCHMARKS.md, "Design measurements").

const CHUNK = 1024 * 1024;
const READ_AHEAD_TRANSFERS = 16;
let transfers = 0;
/** Idle buffers kept for the next transfers; more concurrent transfers allocate and drop their own. */
const POOL_MAX = 16;
const pool: Buffer[] = [];

const take = (): Buffer => pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
const give = (buf: Buffer): void => {
  if (pool.length < POOL_MAX) pool.push(buf);
};

interface Chunk {
  buf: Buffer;
  length: number;
}

/**
 * Write bytes `range` (inclusive) of an open file to `out`, then close the file. Resolves once `out`
 * has taken every byte (it is not ended); rejects if the file is shorter than the range, a read fails,
 * or `out` fails or closes first.
 */
export async function pipeFile(handle: FileHandle, range: ByteRange, out: Writable): Promise<void> {
  const end = range.end;
  let next = range.start; // the first byte not yet asked for
  const readsAtOnce = ++transfers <= READ_AHEAD_TRANSFERS ? 2 : 1;
  const free: Buffer[] = [];
  for (let i = 0; i <= readsAtOnce; i++) free.push(take());
  const reads: Promise<Chunk>[] = []; // in file order
  let writing: { buf: Buffer; done: Promise<void> } | null = null;
  let reusable = true; // false if `out` may still hold a buffer (a write that never called back)
  const readAhead = () => {
    while (reads.length < readsAtOnce && free.length > 0 && next <= end) {
      const buf = free.pop()!;
      const length = Math.min(CHUNK, end - next + 1);
      const read = readFully(handle, buf, length, next).then(() => ({ buf, length }));
      read.catch(() => undefined); // handled when awaited, in order
      reads.push(read);
      next += length;
    }
  };
  try {
    readAhead();
    while (reads.length > 0) {
      const chunk = await reads.shift()!;
      if (writing) {
        await writing.done;
        free.push(writing.buf);
        writing = null;
      }
      const done = writeChunk(out, chunk.buf.subarray(0, chunk.length));
      done.catch(() => undefined); // handled when awaited; a failure during the next read must not go unhandled
      writing = { buf: chunk.buf, done };
      readAhead();
    }
    if (writing) await writing.done;
  } catch (err) {
    reusable = false;
    // Let reads and a failed write settle so nothing is left pending against a reused buffer.
    await Promise.allSettled([...reads, writing?.done]);
    throw err;
  } finally {
    transfers--;
    await handle.close();
    if (reusable) {
      if (writing) free.push(writing.buf);
      free.forEach(give);
    }
  }
}

/** Read `length` bytes at `pos` into buf (a read may return fewer); rejects if the file ends first. */
async function readFully(handle: FileHandle, buf: Buffer, length: number, pos: number): Promise<void> {
  for (let got = 0; got < length; ) {
    const { bytesRead } = await handle.read(buf, got, length - got, pos + got);
    if (bytesRead === 0) throw new Error(`file ended at byte ${pos + got}, expected ${pos + length}`);
    got += bytesRead;
  }
}

/** out.write, resolved by its callback (the bytes reached the socket) or rejected if `out` closes first. */
function writeChunk(out: Writable, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = () => reject(new Error('connection closed during the response'));
    out.once('close', onClose);
    out.write(chunk, (err) => {
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}
