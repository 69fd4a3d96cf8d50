// The slabs that carry upload bytes from the main thread to the upload workers, as slots of shared memory
// instead of ArrayBuffers moved back and forth. Why: each 256 KiB ArrayBuffer came from glibc's heap (its
// mmap threshold rises past 256 KiB after the first one is freed), and bursts of parallel pushes left that
// heap fragmented: 64 x 16 MiB rounds on one server settled anywhere from 161 to 210 MiB RSS, with ~60 MB
// of the main arena free but never given back. Shared chunks are mmapped once, only the pages of slots in
// use become resident, and a slot is reused, never freed: the memory after a burst is what the burst used.

/** Slot size: the unit copied, sent, written and hashed. */
export const SLAB = 256 * 1024;
/** Slots per shared chunk: 32 MiB of address space each, resident only where slots have been used. */
const SLOTS_PER_CHUNK = 128;

export class SlabArena {
  /** The shared chunks, in order; slot `s` is in chunk `Math.floor(s / slotsPerChunk)`. */
  readonly chunks: SharedArrayBuffer[] = [];
  private readonly views: Uint8Array[] = [];
  /** Free slots, the most recently used on top, so a quiet server keeps touching the same few pages. */
  private readonly free: number[] = [];

  /** `onChunk` is told of every new chunk before any of its slots is handed out (the workers need it). */
  constructor(
    private readonly onChunk: (chunk: SharedArrayBuffer, index: number) => void,
    private readonly sharedMemory: (bytes: number) => SharedArrayBuffer = alignedSharedMemory,
    readonly slotsPerChunk = SLOTS_PER_CHUNK,
  ) {}

  /** Slots handed out and not given back. */
  get out(): number {
    return this.views.length - this.free.length;
  }

  /** A free slot; a new chunk when none is left (parallel appends are bounded by the caller, not here). */
  take(): number {
    if (this.free.length === 0) this.grow();
    return this.free.pop()!;
  }

  give(slot: number): void {
    this.free.push(slot);
  }

  /** The slot's bytes (shared: the main thread writes a slot only while no worker holds it). */
  view(slot: number): Uint8Array {
    return this.views[slot];
  }

  private grow(): void {
    const index = this.chunks.length;
    const chunk = this.sharedMemory(this.slotsPerChunk * SLAB);
    this.chunks.push(chunk);
    this.onChunk(chunk, index);
    const first = this.views.length;
    for (let i = 0; i < this.slotsPerChunk; i++) this.views.push(new Uint8Array(chunk, i * SLAB, SLAB));
    for (let s = first + this.slotsPerChunk - 1; s >= first; s--) this.free.push(s); // lowest slot on top
  }
}

/**
 * Shared memory whose start is page-aligned, so every slot is too and the workers can write it with
 * O_DIRECT (a plain SharedArrayBuffer comes from malloc, 16 bytes past a page). WebAssembly memory is
 * mapped by V8 itself on page boundaries; if it cannot be had, plain shared memory still works (the
 * workers then fall back to plain writes).
 */
// A Node global, typed only in TypeScript's DOM lib, which this project does not load.
declare const WebAssembly: { Memory: new (d: { initial: number; maximum: number; shared: true }) => { buffer: SharedArrayBuffer } };

function alignedSharedMemory(bytes: number): SharedArrayBuffer {
  const pages = Math.ceil(bytes / 65536);
  try {
    return new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true }).buffer;
  } catch {
    return new SharedArrayBuffer(bytes);
  }
}
