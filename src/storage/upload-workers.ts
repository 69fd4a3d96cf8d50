import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { SlabArena } from './slab-arena';
import { UPLOAD_WORKER_SOURCE } from './upload-worker-source';

// Worker threads that write uploads to their staged files and sha256 them in the same pass, so the main
// thread only parses HTTP and copies each body chunk into a slab. Measured on 2 cores, 64 parallel 16 MiB
// pushes: the main thread's CPU per GiB went from ~1.7 s (hash + write dispatch) to ~1.1 s, and throughput
// rose ~20 %: both cores now work on the bytes (a prototype with one worker gained nothing).
// Each upload's running hash lives in one worker (its "home"), so a later chunk or the commit goes there.

/** Slabs per append: at most this many bytes wait for the worker; then the body waits (flow control). */
const SLABS_PER_APPEND = 4;
/**
 * Once this many slabs are out over all appends, an append takes no more than two (double buffering), so
 * a single upload keeps its four but 64 parallel ones hold ~32 MiB of slabs instead of ~64. Measured for
 * 64 parallel 16 MiB pushes (4 fresh-server pairs): peak RSS 209-214 vs 223-266 MiB, throughput as before
 * (first bursts 591-621 vs 558-608 MiB/s).
 */
const BUSY_SLABS = 32;
const SLABS_WHEN_BUSY = 2;

export interface AppendOptions {
  file: string;
  position: number;
  fsync: boolean;
  writebackEvery: number;
  /** Write whole blocks with O_DIRECT where the file system takes it (default true). */
  direct?: boolean;
}

interface WorkerError {
  message: string;
  code?: string;
  errno?: number;
  syscall?: string;
}

type Reply =
  | { op: 'slab'; job: number; slot: number }
  | { op: 'done'; job: number; size: number; hex: string; flushes: number; direct: number }
  | { op: 'aborted'; job: number }
  | { op: 'failed'; job: number; error: WorkerError }
  | { op: 'digest'; req: number; hex?: string; error?: WorkerError };

/** What the main thread tracks of an append in flight. */
interface Job {
  key: string;
  home: Home;
  /** Slots of this append back from the worker, to be filled again. */
  free: number[];
  /** Slots this append holds: free ones and those with the worker. */
  slabs: number;
  /** Settles the append's wait for the worker's final answer (done, aborted or failed). */
  settle: (err?: Error) => void;
  /** Background flushes the worker ran for this append, and bytes it wrote with O_DIRECT (reported with 'done'). */
  flushes: number;
  direct: number;
  failure: Error | null;
  wake: (() => void) | null;
}

class Home {
  readonly worker: Worker;
  /** Appends and digests waiting for this worker (it is ref'd while any do). */
  pending = 0;
  alive = true;
  /** Slots sent to this worker and not yet back: given back to the arena if it dies. */
  readonly slots = new Set<number>();

  constructor(
    private readonly pool: UploadWorkers,
    readonly index: number,
  ) {
    this.worker = new Worker(UPLOAD_WORKER_SOURCE, { eval: true, name: `upload-${index}` });
    this.worker.unref();
    this.worker.on('message', (reply: Reply) => this.pool.receive(this, reply));
    this.worker.on('error', (err) => this.pool.lost(this, err));
    this.worker.on('exit', (code) => this.pool.lost(this, new Error(`upload worker exited with code ${code}`)));
  }

  /** Share an arena chunk with the worker (before any message that names one of its slots). */
  share(chunk: SharedArrayBuffer, index: number, slotsPerChunk: number): void {
    this.worker.postMessage({ op: 'arena', index, chunk, slotsPerChunk });
  }

  hold(): void {
    if (this.pending++ === 0) this.worker.ref();
  }

  release(): void {
    if (--this.pending === 0) this.worker.unref();
  }
}

export class UploadWorkers {
  private readonly homes: (Home | null)[];
  /** Which worker holds each upload's running hash. */
  private readonly homeOf = new Map<string, Home>();
  /** The digest of each upload's staged bytes after its last append (most commits follow one at once). */
  private readonly lastDigest = new Map<string, { size: number; hex: string }>();
  private readonly jobs = new Map<number, Job>();
  private readonly digests = new Map<number, { home: Home; resolve: (hex: string) => void; reject: (err: Error) => void }>();
  private readonly arena: SlabArena;
  private nextJob = 1;
  private closed = false;

  /** `sharedMemory` is for tests: slots that are not page-aligned, which O_DIRECT refuses. */
  constructor(size = Math.max(1, Math.min(4, availableParallelism())), sharedMemory?: (bytes: number) => SharedArrayBuffer) {
    this.homes = new Array<Home | null>(size).fill(null);
    this.arena = new SlabArena((chunk, index) => {
      for (const home of this.homes) if (home?.alive) home.share(chunk, index, this.arena.slotsPerChunk);
    }, sharedMemory);
  }

  /**
   * Write `body` to `file` from `position` (bytes past it are dropped first) and extend upload `key`'s
   * running hash with it. On failure the hash is as it was, and the caller truncates the file back.
   * A failure of the worker is seen when the next chunk arrives or the body ends, as with a disk error.
   */
  async append(key: string, opts: AppendOptions, body: AsyncIterable<Buffer>): Promise<{ flushes: number; direct: number }> {
    const home = this.homeFor(key);
    const id = this.nextJob++;
    let settle!: (err?: Error) => void;
    const settled = new Promise<void>((resolve, reject) => {
      settle = (err) => (err ? reject(err) : resolve());
    });
    settled.catch(() => undefined); // a failure may come while the body is still being read: seen there via job.failure
    const job: Job = { key, home, free: [], slabs: 0, settle, flushes: 0, direct: 0, failure: null, wake: null };
    this.jobs.set(id, job);
    home.hold();
    let sentEnd = false;
    let slot = -1; // taken when there are bytes for it, so an empty body takes none
    let slab: Uint8Array | null = null; // the slot's bytes while it is being filled here
    let fill = 0;
    try {
      home.worker.postMessage({ op: 'begin', job: id, key, ...opts });
      const send = () => {
        home.slots.add(slot);
        home.worker.postMessage({ op: 'data', job: id, slot, length: fill });
        slab = null;
        fill = 0;
      };
      for await (const chunk of body) {
        for (let off = 0; off < chunk.length; ) {
          if (job.failure) throw job.failure;
          if (!slab) {
            slot = this.takeSlab(job) ?? (await this.waitForSlab(job));
            slab = this.arena.view(slot);
          }
          const n = Math.min(chunk.length - off, slab.length - fill);
          slab.set(chunk.subarray(off, off + n), fill);
          fill += n;
          off += n;
          if (fill === slab.length) send();
        }
      }
      if (job.failure) throw job.failure;
      if (slab) send();
      sentEnd = true;
      home.worker.postMessage({ op: 'end', job: id });
      await settled;
      return { flushes: job.flushes, direct: job.direct };
    } catch (err) {
      // The body or the worker failed. Wait until the worker has closed the file and put the hash back
      // (it already has if it failed itself, and a dead one does nothing more): the caller then truncates.
      if (!sentEnd && !job.failure && home.alive) home.worker.postMessage({ op: 'abort', job: id });
      await settled.catch(() => undefined);
      throw err;
    } finally {
      this.jobs.delete(id);
      home.release();
      // Slots still with a live worker come back by themselves (see receive); a dead one's were given back.
      if (slab) this.arena.give(slot);
      for (const own of job.free) this.arena.give(own);
    }
  }

  /** sha256 (hex) of the first `size` bytes of upload `key`'s staged file. */
  async digest(key: string, file: string, size: number): Promise<string> {
    const last = this.lastDigest.get(key);
    if (last?.size === size) return last.hex;
    const home = this.homeFor(key);
    const req = this.nextJob++;
    home.hold();
    return new Promise<string>((resolve, reject) => {
      this.digests.set(req, { home, resolve, reject });
      home.worker.postMessage({ op: 'digest', req, key, file, size });
    }).finally(() => home.release());
  }

  /** Forget upload `key`'s running hash (committed or discarded). */
  drop(key: string): void {
    this.lastDigest.delete(key);
    const home = this.homeOf.get(key);
    if (!home) return;
    this.homeOf.delete(key);
    if (home.alive) home.worker.postMessage({ op: 'drop', key });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.homes.map((h) => h?.worker.terminate()));
  }

  receive(home: Home, reply: Reply): void {
    if (reply.op === 'digest') {
      const d = this.digests.get(reply.req);
      if (!d) return;
      this.digests.delete(reply.req);
      if (reply.error) d.reject(toError(reply.error));
      else d.resolve(reply.hex!);
      return;
    }
    const job = this.jobs.get(reply.job);
    if (reply.op === 'slab') {
      home.slots.delete(reply.slot);
      if (!job) return this.arena.give(reply.slot); // its append failed and ended before the worker got to it
      job.free.push(reply.slot);
      this.wake(job);
    } else if (!job) {
      return;
    } else if (reply.op === 'failed') {
      job.failure = toError(reply.error);
      job.settle(job.failure);
      this.wake(job);
    } else {
      if (reply.op === 'done') {
        this.lastDigest.set(job.key, { size: reply.size, hex: reply.hex });
        job.flushes = reply.flushes;
        job.direct = reply.direct;
      }
      job.settle();
    }
  }

  /** A worker died: everything waiting on it fails, and the uploads it hashed will be re-hashed from their files. */
  lost(home: Home, err: Error): void {
    if (!home.alive) return;
    home.alive = false;
    this.homes[home.index] = null;
    for (const [key, h] of this.homeOf) if (h === home) this.homeOf.delete(key);
    for (const slot of home.slots) this.arena.give(slot); // a dead worker touches them no more
    home.slots.clear();
    for (const job of this.jobs.values()) {
      if (job.home !== home) continue;
      job.failure ??= err;
      job.settle(err);
      this.wake(job);
    }
    for (const [req, d] of this.digests) {
      if (d.home !== home) continue;
      this.digests.delete(req);
      d.reject(err);
    }
  }

  private homeFor(key: string): Home {
    if (this.closed) throw new Error('upload workers are closed');
    const known = this.homeOf.get(key);
    if (known?.alive) return known;
    // The least busy worker; a new one if its slot is empty.
    let best = 0;
    for (let i = 1; i < this.homes.length; i++) {
      if ((this.homes[i]?.pending ?? 0) < (this.homes[best]?.pending ?? 0)) best = i;
    }
    let home = this.homes[best];
    if (!home) {
      home = this.homes[best] = new Home(this, best);
      this.arena.chunks.forEach((chunk, index) => home!.share(chunk, index, this.arena.slotsPerChunk));
    }
    this.homeOf.set(key, home);
    return home;
  }

  /** A slot for the job: one of its own that came back, or a new one while it has fewer than its share. */
  private takeSlab(job: Job): number | null {
    const own = job.free.pop();
    if (own !== undefined) return own;
    if (job.slabs >= (this.arena.out >= BUSY_SLABS ? SLABS_WHEN_BUSY : SLABS_PER_APPEND)) return null;
    job.slabs++;
    return this.arena.take();
  }

  private async waitForSlab(job: Job): Promise<number> {
    for (;;) {
      if (job.failure) throw job.failure;
      const slot = this.takeSlab(job);
      if (slot !== null) return slot;
      await new Promise<void>((resolve) => (job.wake = resolve));
    }
  }

  private wake(job: Job): void {
    const wake = job.wake;
    job.wake = null;
    wake?.();
  }
}

function toError(e: WorkerError): Error {
  return Object.assign(new Error(e.message), { code: e.code, errno: e.errno, syscall: e.syscall });
}
