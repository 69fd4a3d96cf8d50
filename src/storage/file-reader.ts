import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { ByteRange } from './driver';
import { DownloadBuffers, MAX_BUFFER, type BufferGrant } from './download-buffers';

// A Readable allocates a buffer per chunk, and V8 answers that external memory with major GCs of the whole
// heap. Here a few buffers per transfer are reused, each once the socket has taken its bytes (the write
// callback), so a pull makes no garbage per byte. Two reads are in flight while a chunk is written, because
// a cold file reads faster on two of libuv's threads; past READ_AHEAD_TRANSFERS transfers, one. All
// transfers share one byte budget (DownloadBuffers), so many concurrent pulls get smaller buffers, not more
// memory (figures: BENCHMARKS.md, "Design measurements").

const READ_AHEAD_TRANSFERS = 16;
/** Bytes all downloads may hold at once, and bytes of buffers kept for reuse between them. */
const BUDGET = 64 * 1024 * 1024;
const KEEP_IDLE = 16 * 1024 * 1024;
let transfers = 0;
export const downloadBuffers = new DownloadBuffers(BUDGET, KEEP_IDLE);

interface Chunk {
  buf: Buffer;
  length: number;
}

/**
 * Write bytes `range` (inclusive) of an open file to `out`, then close the file. Resolves once `out`
 * has taken every byte (it is not ended); rejects if the file is shorter than the range, a read fails,
 * or `out` fails or closes first.
 */
export async function pipeFile(handle: FileHandle, range: ByteRange, out: Writable, buffers = downloadBuffers): Promise<void> {
  const end = range.end;
  const length = end - range.start + 1;
  let next = range.start; // the first byte not yet asked for
  transfers++;
  let grant: BufferGrant | null = null;
  const reads: Promise<Chunk>[] = []; // in file order
  let writing: { buf: Buffer; done: Promise<void> } | null = null;
  let reusable = true; // false if `out` may still hold a buffer (a write that never called back)
  try {
    const wanted = transfers <= READ_AHEAD_TRANSFERS ? 3 : 2;
    grant = await buffers.take(length, Math.min(wanted, Math.ceil(length / MAX_BUFFER)));
    const free = [...grant.buffers];
    const readsAtOnce = Math.max(1, free.length - 1);
    const readAhead = () => {
      while (reads.length < readsAtOnce && free.length > 0 && next <= end) {
        const buf = free.pop()!;
        const n = Math.min(buf.length, end - next + 1);
        const read = readFully(handle, buf, n, next).then(() => ({ buf, length: n }));
        read.catch(() => undefined); // handled when awaited, in order
        reads.push(read);
        next += n;
      }
    };
    readAhead();
    while (reads.length > 0 || writing) {
      // With every buffer in a write (a grant of one), the next read waits for the socket to take it.
      const chunk = reads.length > 0 ? await reads.shift()! : null;
      if (writing) {
        await writing.done;
        free.push(writing.buf);
        writing = null;
      }
      if (chunk) {
        const done = writeChunk(out, chunk.buf.subarray(0, chunk.length));
        done.catch(() => undefined); // handled when awaited; a failure during the next read must not go unhandled
        writing = { buf: chunk.buf, done };
      }
      readAhead();
    }
    if (grant) buffers.give(grant, free);
    grant = null;
  } catch (err) {
    reusable = false;
    // Let reads and a failed write settle so nothing is left pending against a reused buffer.
    await Promise.allSettled([...reads, writing?.done]);
    throw err;
  } finally {
    transfers--;
    // After a failure the buffers are not reused (a write may hold one), but their bytes are free again.
    if (grant) buffers.give(grant, reusable ? grant.buffers : []);
    await handle.close();
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
