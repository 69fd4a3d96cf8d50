// The buffers that file downloads read into, under one byte budget for the whole process, so memory
// stays bounded however many clients pull at once: past the budget a transfer gets fewer and smaller
// buffers, and when not even the smallest fits it waits for one to come back.

/** The largest buffer a transfer reads into. */
export const MAX_BUFFER = 4 * 1024 * 1024;
/** The smallest one a transfer is given under pressure (a smaller file gets one its own size). */
const MIN_BUFFER = 64 * 1024;

export interface BufferGrant {
  buffers: Buffer[];
  /** The bytes the grant counts against the budget (what give() hands back). */
  bytes: number;
}

export class DownloadBuffers {
  /** Bytes held by transfers. */
  private used = 0;
  /** Buffers back from transfers, by size, kept for the next ones. */
  private readonly idle = new Map<number, Buffer[]>();
  private idleBytes = 0;
  private readonly waiting: { bytes: number; wake: () => void }[] = [];

  /** `budget`: bytes transfers may hold at once; `keepIdle`: bytes kept for reuse once given back. */
  constructor(
    readonly budget: number,
    private readonly keepIdle: number,
  ) {
    if (budget < MIN_BUFFER) throw new Error(`download buffer budget below ${MIN_BUFFER} bytes`);
  }

  /**
   * Up to `count` buffers for a transfer of `length` bytes: `count` of the size the transfer needs if the
   * budget has room, else two, then smaller ones down to MIN_BUFFER, then one; waits (in turn) when not even that fits.
   */
  async take(length: number, count: number): Promise<BufferGrant> {
    const want = bufferSize(length);
    const fitting = this.waiting.length === 0 ? this.fit(want, count) : null;
    if (fitting) return this.grant(fitting.size, fitting.count);
    const least = Math.min(want, MIN_BUFFER);
    await new Promise<void>((wake) => this.waiting.push({ bytes: least, wake }));
    // woken with its bytes reserved: see give()
    this.used -= least;
    return this.grant(least, 1);
  }

  /** Hand a grant's buffers back. Buffers a transfer could not reuse (a write failed) are left out of `buffers`. */
  give(grant: BufferGrant, buffers: Buffer[]): void {
    this.used -= grant.bytes;
    for (const buf of buffers) {
      if (this.idleBytes + buf.length > this.keepIdle) break;
      const list = this.idle.get(buf.length) ?? [];
      list.push(buf);
      this.idle.set(buf.length, list);
      this.idleBytes += buf.length;
    }
    while (this.waiting.length > 0 && this.used + this.waiting[0]!.bytes <= this.budget) {
      const next = this.waiting.shift()!;
      this.used += next.bytes; // reserved now, so a transfer arriving meanwhile cannot take it
      next.wake();
    }
  }

  /** Let go of the idle buffers (the server went quiet); returns their bytes. */
  release(): number {
    const bytes = this.idleBytes;
    this.idle.clear();
    this.idleBytes = 0;
    return bytes;
  }

  /** Bytes held by transfers, and transfers waiting (for tests and metrics). */
  get stats(): { used: number; waiting: number; idle: number } {
    return { used: this.used, waiting: this.waiting.length, idle: this.idleBytes };
  }

  /** The most buffers that fit, and of the largest size: `count`, then two, of ever smaller sizes; one only at the last. */
  private fit(want: number, count: number): { size: number; count: number } | null {
    const room = this.budget - this.used;
    const least = Math.min(want, MIN_BUFFER);
    for (let size = want; size >= least; size /= 2) {
      for (const n of [count, Math.min(count, 2)]) if (n * size <= room) return { size, count: n };
    }
    return least <= room ? { size: least, count: 1 } : null;
  }

  private grant(size: number, count: number): BufferGrant {
    const buffers: Buffer[] = [];
    const list = this.idle.get(size);
    for (let i = 0; i < count; i++) {
      const reused = list?.pop();
      if (reused) this.idleBytes -= size;
      buffers.push(reused ?? Buffer.allocUnsafeSlow(size));
    }
    this.used += size * count;
    return { buffers, bytes: size * count };
  }
}

/** A power of two from 4 KiB to MAX_BUFFER that holds `length` bytes if it can. */
function bufferSize(length: number): number {
  let size = 4096;
  while (size < length && size < MAX_BUFFER) size *= 2;
  return size;
}
