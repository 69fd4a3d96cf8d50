import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { workerEnv, workerFile } from '../worker-files';
import type { AppendOptions, AppendResult, UploadReply, UploadRequest, UploadWorkerData, WorkerError } from './upload-protocol';

export type { AppendOptions, AppendResult, AppendStats } from './upload-protocol';

// Worker threads that write uploads to their staged files and sha256 them in the same pass, so the main
// thread only parses HTTP and copies each body chunk into a slab, and both cores work on the bytes.
// Each upload's running hash lives in one worker (its "home"), so a later chunk or the commit goes there.

const WORKER_FILE = workerFile(__filename, 'upload-worker');

/** Slab size: the unit copied, sent, written and hashed. */
const SLAB = 256 * 1024;
/** An append's first slab is a small one: most bodies (manifests, small layers) fit in it. */
const FIRST_SLAB = 64 * 1024;
/** Slabs per append: at most this many bytes wait for the worker; then the body waits (flow control). */
const SLABS_PER_APPEND = 4;
/**
 * Bytes of slabs out over all appends past which an append takes no slab beyond its first: one upload keeps
 * its four (double buffering and more), many parallel ones cycle one each, and the socket holds the rest of
 * the body back. Every append always gets one, so each goes on (BENCHMARKS.md, "Design measurements").
 */
const SLAB_BUDGET = 8 * 1024 * 1024;
/**
 * Slabs kept for reuse once their append ended, per size (the rest are left to the garbage collector).
 * Reuse matters for the small first slabs: freshly allocated ones fragment glibc's heap, which then keeps
 * what was freed after a burst of small pushes. Full slabs are mmap'd (MALLOC_MMAP_THRESHOLD_ in npm start)
 * and given back whole, so few are kept (BENCHMARKS.md, "Design measurements").
 */
const SPARE = { [FIRST_SLAB]: 256, [SLAB]: 16 } as Record<number, number>;

/** Told once per process: every worker that cannot have its page-aligned copies says so. */
let warnedNoDirect = false;

/** What the main thread tracks of an append in flight. */
interface Job {
  key: string;
  home: Home;
  free: ArrayBuffer[];
  /** Slabs it holds (with the worker, in `free` or being filled), and their bytes; whether it had its small first one. */
  slabs: number;
  slabBytes: number;
  tookFirst: boolean;
  /** Settles the append's wait for the worker's final answer (done, aborted or failed). */
  settle: (err?: Error) => void;
  /** Reported with 'done'. */
  result: AppendResult | null;
  failure: Error | null;
  wake: (() => void) | null;
}

class Home {
  readonly worker: Worker;
  /** Appends and digests waiting for this worker (it is ref'd while any do). */
  pending = 0;
  alive = true;

  constructor(
    private readonly pool: UploadWorkers,
    readonly index: number,
    misalign: boolean,
  ) {
    const workerData: UploadWorkerData = { misalign };
    this.worker = new Worker(WORKER_FILE, { name: `upload-${index}`, workerData, env: workerEnv() });
    this.worker.unref();
    this.worker.on('message', (reply: UploadReply) => this.pool.receive(this, reply));
    this.worker.on('error', (err) => this.pool.lost(this, err));
    this.worker.on('exit', (code) => this.pool.lost(this, new Error(`upload worker exited with code ${code}`)));
  }

  post(request: UploadRequest, transfer?: ArrayBuffer[]): void {
    this.worker.postMessage(request, transfer);
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
  private readonly spare = new Map<number, ArrayBuffer[]>([
    [FIRST_SLAB, []],
    [SLAB, []],
  ]);
  /** Bytes of the slabs held by appends in flight (with the worker, or back and waiting to be filled). */
  private slabBytes = 0;
  private nextJob = 1;
  private closed = false;

  /** `misalign` is for tests: the workers' O_DIRECT buffer off its page boundary, which O_DIRECT refuses. */
  constructor(
    size = Math.max(1, Math.min(4, availableParallelism())),
    private readonly misalign = false,
  ) {
    this.homes = new Array<Home | null>(size).fill(null);
  }

  /**
   * Write `body` to `file` from `position` (bytes past it are dropped first) and extend upload `key`'s
   * running hash with it. On failure the hash is as it was, and the caller truncates the file back.
   * A failure of the worker is seen when the next chunk arrives or the body ends, as with a disk error.
   */
  async append(key: string, opts: AppendOptions, body: AsyncIterable<Buffer>): Promise<AppendResult> {
    const home = this.homeFor(key);
    const id = this.nextJob++;
    let settle!: (err?: Error) => void;
    const settled = new Promise<void>((resolve, reject) => {
      settle = (err) => (err ? reject(err) : resolve());
    });
    settled.catch(() => undefined); // a failure may come while the body is still being read: seen there via job.failure
    const job: Job = { key, home, free: [], slabs: 0, slabBytes: 0, tookFirst: false, settle, result: null, failure: null, wake: null };
    this.jobs.set(id, job);
    home.hold();
    let sentEnd = false;
    try {
      home.post({ op: 'begin', job: id, key, ...opts });
      let slab: ArrayBuffer | null = null; // taken when there are bytes for it, so an empty body takes none
      let fill = 0;
      for await (const chunk of body) {
        for (let off = 0; off < chunk.length; ) {
          if (job.failure) throw job.failure;
          slab ??= this.takeSlab(job) ?? (await this.waitForSlab(job));
          const n = Math.min(chunk.length - off, slab.byteLength - fill);
          new Uint8Array(slab, fill, n).set(chunk.subarray(off, off + n));
          fill += n;
          off += n;
          if (fill === slab.byteLength) {
            home.post({ op: 'data', job: id, slab, length: fill }, [slab]);
            slab = null;
            fill = 0;
          }
        }
      }
      if (job.failure) throw job.failure;
      if (slab) home.post({ op: 'data', job: id, slab, length: fill }, [slab]);
      sentEnd = true;
      home.post({ op: 'end', job: id });
      await settled;
      return job.result!;
    } catch (err) {
      // The body or the worker failed. Wait until the worker has closed the file and put the hash back
      // (it already has if it failed itself, and a dead one does nothing more): the caller then truncates.
      if (!sentEnd && !job.failure && home.alive) home.post({ op: 'abort', job: id });
      await settled.catch(() => undefined);
      throw err;
    } finally {
      this.jobs.delete(id);
      this.slabBytes -= job.slabBytes;
      home.release();
      for (const slab of job.free) this.giveBack(slab);
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
      home.post({ op: 'digest', req, key, file, size });
    }).finally(() => home.release());
  }

  /** Forget upload `key`'s running hash (committed or discarded). */
  drop(key: string): void {
    this.lastDigest.delete(key);
    const home = this.homeOf.get(key);
    if (!home) return;
    this.homeOf.delete(key);
    if (home.alive) home.post({ op: 'drop', key });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.homes.map((h) => h?.worker.terminate()));
  }

  receive(home: Home, reply: UploadReply): void {
    if (reply.op === 'noDirect') {
      if (!warnedNoDirect) process.emitWarning(reply.message, { code: 'REGISTRY_NO_DIRECT_WRITES' });
      warnedNoDirect = true;
      return;
    }
    if (reply.op === 'digest') {
      const d = this.digests.get(reply.req);
      if (!d) return;
      this.digests.delete(reply.req);
      if (reply.error) d.reject(toError(reply.error));
      else d.resolve(reply.hex);
      return;
    }
    const job = this.jobs.get(reply.job);
    if (!job) return;
    if (reply.op === 'slab') {
      // A small first slab goes back to the pool: a body that outgrew it gets a full-size one in its place.
      if (reply.slab.byteLength === SLAB) job.free.push(reply.slab);
      else {
        job.slabs--;
        job.slabBytes -= reply.slab.byteLength;
        this.slabBytes -= reply.slab.byteLength;
        this.giveBack(reply.slab);
      }
      this.wake(job);
    } else if (reply.op === 'failed') {
      job.failure = toError(reply.error);
      job.settle(job.failure);
      this.wake(job);
    } else {
      if (reply.op === 'done') {
        this.lastDigest.set(job.key, { size: reply.size, hex: reply.hex });
        const { flushes, direct, writes, waited, copiesFree, prefixedHex, layer } = reply;
        job.result = { flushes, direct, writes, waited, copiesFree, prefixedHex, layer };
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
    const home = (this.homes[best] ??= new Home(this, best, this.misalign));
    this.homeOf.set(key, home);
    return home;
  }

  /** A slab for the job: one of its own that came back, its first, or another while it has fewer than four and the budget has room. */
  private takeSlab(job: Job): ArrayBuffer | null {
    const own = job.free.pop();
    if (own) return own;
    const size = job.tookFirst ? SLAB : FIRST_SLAB;
    if (job.slabs >= SLABS_PER_APPEND || (job.slabs > 0 && this.slabBytes + size > SLAB_BUDGET)) return null;
    job.tookFirst = true;
    job.slabs++;
    job.slabBytes += size;
    this.slabBytes += size;
    return this.spare.get(size)!.pop() ?? new ArrayBuffer(size);
  }

  /**
   * Let go of the slabs kept for reuse (the server went quiet; a collection follows if any). Kept across a burst
   * they sit all over glibc's heap and pin its freed memory, and RSS settles tens of MiB higher (docs/storage.md,
   * Memory). Returns the bytes let go.
   */
  releaseSpare(): number {
    let bytes = 0;
    for (const [size, slabs] of this.spare) {
      bytes += size * slabs.length;
      slabs.length = 0;
    }
    return bytes;
  }

  private giveBack(slab: ArrayBuffer): void {
    const spare = this.spare.get(slab.byteLength);
    if (spare && spare.length < SPARE[slab.byteLength]) spare.push(slab);
  }

  private async waitForSlab(job: Job): Promise<ArrayBuffer> {
    for (;;) {
      if (job.failure) throw job.failure;
      const slab = this.takeSlab(job);
      if (slab) return slab;
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
