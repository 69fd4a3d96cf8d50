import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import type { ByteRange } from './driver';

// Serving a file through a Readable allocates a fresh buffer per chunk, and V8 answers every 64 MiB of
// such external memory with a major GC of the whole heap: profiled, that was ~40 % of the CPU of a
// 1 GiB blob GET. Here two buffers per transfer are read into in turn and reused, each only once the
// socket has taken the bytes written from it (the write callback), so a pull makes no garbage per byte.

const CHUNK = 1024 * 1024;
/** Idle buffers kept for the next transfers; more concurrent transfers allocate and drop their own. */
const POOL_MAX = 16;
const pool: Buffer[] = [];

const take = (): Buffer => pool.pop() ?? Buffer.allocUnsafeSlow(CHUNK);
const give = (buf: Buffer): void => {
  if (pool.length < POOL_MAX) pool.push(buf);
};

/**
 * Write bytes `range` (inclusive) of an open file to `out`, then close the file. Resolves once `out`
 * has taken every byte (it is not ended); rejects if the file is shorter than the range, a read fails,
 * or `out` fails or closes first.
 */
export async function pipeFile(handle: FileHandle, range: ByteRange, out: Writable): Promise<void> {
  const end = range.end;
  let pos = range.start;
  const buffers = [take(), take()];
  let writing: Promise<void> | null = null;
  let turn = 0;
  let reusable = true; // false if `out` may still hold a buffer (a write that never called back)
  try {
    while (pos <= end) {
      // This buffer's previous write was awaited before the other buffer's write started: it is free.
      const buf = buffers[turn]!;
      turn ^= 1;
      const { bytesRead } = await handle.read(buf, 0, Math.min(CHUNK, end - pos + 1), pos);
      if (bytesRead === 0) throw new Error(`file ended at byte ${pos}, expected ${end + 1}`);
      pos += bytesRead;
      if (writing) await writing;
      writing = writeChunk(out, buf.subarray(0, bytesRead));
      writing.catch(() => undefined); // handled when awaited; a failure during the next read must not go unhandled
    }
    if (writing) await writing;
  } catch (err) {
    reusable = false;
    // Let a failed write settle so nothing is left pending against a reused buffer.
    await writing?.catch(() => undefined);
    throw err;
  } finally {
    await handle.close();
    if (reusable) buffers.forEach(give);
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
