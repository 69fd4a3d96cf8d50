import { hostname } from 'node:os';
import type { DoomedBlob, GcIndex, LockHolder } from '../index/gc-index';
import type { StorageDriver } from '../storage/driver';
import type { Digest } from '../storage/digest';
import type { GcPhase, GcReport, GcRunOptions } from './types';

// Online garbage collection: mark and sweep as queries over the index, in small transactions, while pushes
// and pulls go on. The order matters: manifests no tag reaches (if asked), then links no manifest uses,
// then blobs nothing refers to, then what storage holds that the index never named. Blobs leave the index
// (into gc_doomed) before their bytes are deleted, so a run killed half-way is finished by the next.

export interface GcSettings {
  /** Nothing younger than this is collected: a push in progress has this long to name what it uploaded. */
  delayMs: number;
  /** Delete manifests no tag reaches (once older than delayMs), or keep them. */
  untagged: 'keep' | 'delete';
}

const REPOS_PER_QUERY = 500;
const MANIFESTS_PER_TRANSACTION = 200;
const DOOMED_PER_QUERY = 500;
/** Deletions in flight at once (S3 round trips, or unlinks on the local disk). */
const DELETE_CONCURRENCY = 8;
/** A lock holder silent this long is taken to be dead; holders say they are alive every HEARTBEAT_MS. */
const LOCK_STALE_MS = 60_000;
const HEARTBEAT_MS = 5_000;

/** Another process (the server, or `npm run registry -- gc`) is collecting. */
export class GcBusyError extends Error {
  override name = 'GcBusyError';
  constructor(readonly holder: LockHolder) {
    super(`a garbage collection is already running (pid ${holder.pid} on ${holder.host}); try again when it has finished`);
  }
}

const me: LockHolder = { host: hostname(), pid: process.pid };

/** A holder on this machine whose process is gone (killed): its lock need not wait to go stale. */
function isGone(holder: LockHolder): boolean {
  if (holder.host !== me.host) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

export class GarbageCollector {
  /** Runs in this process go one after the other. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly index: GcIndex,
    private readonly driver: StorageDriver,
    private readonly settings: GcSettings,
  ) {}

  /**
   * One run. With `dryRun` nothing in storage is touched (the index given should then be a copy). Runs in
   * one process queue; across processes one holds the index's collection lock and the others get GcBusyError.
   */
  run(opts: GcRunOptions = {}): Promise<GcReport> {
    const run = this.exclusive(() => this.runLocked(opts));
    if (!opts.dryRun) {
      run.then(
        (report) => {
          const reclaimed = report.bytes + report.strayBytes;
          Object.assign(this.counts, { runs: this.counts.runs + 1, lastSuccessMs: Date.now(), lastReclaimedBytes: reclaimed });
          this.counts.reclaimedBytes += reclaimed;
        },
        (err) => {
          if (!(err instanceof GcBusyError) && !opts.signal?.aborted) this.counts.failures++;
        },
      );
    }
    return run;
  }

  /** Runs in this process since start (not a dry run), for monitoring; a run from the CLI is another process's. */
  readonly counts = { runs: 0, failures: 0, lastSuccessMs: 0, lastReclaimedBytes: 0, reclaimedBytes: 0 };

  /**
   * Delete the bytes of blobs a run took out of the index and did not get to delete (it was killed): until
   * then a push of the same digest waits. The server calls this at start; a collection running elsewhere
   * finishes its own (GcBusyError).
   */
  finishDoomed(): Promise<Tally> {
    return this.exclusive(() => this.finishDoomedLocked());
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(async () => {
      const holder = await this.index.takeLock(me, Date.now() - LOCK_STALE_MS, isGone);
      if (holder) throw new GcBusyError(holder);
      try {
        return await fn();
      } finally {
        await this.index.releaseLock(me);
      }
    });
    this.queue = next.catch(() => undefined);
    return next;
  }

  private async runLocked(opts: GcRunOptions): Promise<GcReport> {
    const started = Date.now();
    const cutoff = started - this.settings.delayMs;
    const dryRun = opts.dryRun ?? false;
    const report: GcReport = { dryRun, manifests: 0, links: 0, blobs: 0, bytes: 0, staged: 0, stray: 0, strayBytes: 0, durationMs: 0 };
    let lastBeat = started;
    let lockLost = false;
    const progress = (phase: GcPhase, done: number, total?: number) => {
      opts.signal?.throwIfAborted();
      // Taken over as stale (this run stalled past LOCK_STALE_MS): another collector runs now, so stop.
      if (lockLost) throw new Error('garbage collection stopped: another process took over the collection lock');
      opts.onProgress?.({ phase, done, total });
      if (Date.now() - lastBeat >= HEARTBEAT_MS) {
        lastBeat = Date.now();
        this.index.heartbeat(me).then(
          (held) => (lockLost ||= !held),
          () => undefined, // the index is closing: the next batch fails on its own
        );
      }
    };

    if (dryRun) count(report, await this.index.doomedBlobs(Number.MAX_SAFE_INTEGER));
    else await this.finishDoomedLocked(report, (done) => progress('doomed', done));
    progress('doomed', report.blobs);

    if (this.settings.untagged === 'delete') {
      await this.eachRepository(async (repo) => {
        for (let gone; (gone = await this.index.deleteUnreachableManifests(repo, cutoff, MANIFESTS_PER_TRANSACTION)).length > 0; ) {
          report.manifests += gone.length;
          progress('manifests', report.manifests);
        }
      });
    }
    progress('manifests', report.manifests);

    await this.eachRepository(async (repo) => {
      report.links += await this.index.removeUnusedLinks(repo, cutoff);
      progress('links', report.links);
    });
    progress('links', report.links);

    const blobsBefore = report.blobs;
    for (let after: string | null = ''; after !== null; ) {
      const { doomed, next } = await this.index.doomUnreferenced(after, cutoff);
      if (!dryRun) await this.deleteBytes(doomed);
      count(report, doomed);
      progress('blobs', report.blobs - blobsBefore);
      after = next;
    }

    if (this.driver.listStaged) {
      const staged = await this.driver.listStaged();
      for (const [i, area] of staged.entries()) {
        if (await this.index.uploadExists(area.id)) continue;
        if (!dryRun) await this.driver.abortUpload(area.id, {});
        report.staged++;
        progress('staged', i + 1, staged.length);
      }
    }
    progress('staged', report.staged);

    if (this.driver.listObjects) {
      const strays: DoomedBlob[] = [];
      const flush = async () => {
        const batch = strays.splice(0);
        if (!dryRun) await this.deleteBytes(batch);
        report.stray += batch.length;
        report.strayBytes += batch.reduce((n, b) => n + b.size, 0);
        progress('stray', report.stray);
      };
      let listed = 0;
      for await (const o of this.driver.listObjects()) {
        if (++listed % DOOMED_PER_QUERY === 0) progress('stray', report.stray);
        if (o.modifiedMs >= cutoff) continue;
        // In a dry run the copy of the index is doomed too, so the counts match what a real run does.
        if (!(await this.index.doomStray(o.key, o.size, o.digest ?? null, o.upload ?? null))) continue;
        strays.push({ digest: (o.digest ?? o.key) as Digest, location: o.key, size: o.size });
        if (strays.length >= DOOMED_PER_QUERY) await flush();
      }
      await flush();
    }

    report.durationMs = Date.now() - started;
    return report;
  }

  /** Counts what it deletes into `done` (a run's report, or a tally of its own). */
  private async finishDoomedLocked<T extends Tally>(done: T = { blobs: 0, bytes: 0 } as T, onProgress?: (blobs: number) => void): Promise<T> {
    for (let batch; (batch = await this.index.doomedBlobs(DOOMED_PER_QUERY)).length > 0; ) {
      await this.deleteBytes(batch);
      count(done, batch);
      onProgress?.(done.blobs);
    }
    return done;
  }

  private async eachRepository(fn: (repo: string) => Promise<void>): Promise<void> {
    for (let after = '', repos: string[]; (repos = await this.index.repositories(after, REPOS_PER_QUERY)).length > 0; after = repos.at(-1)!) {
      for (const repo of repos) await fn(repo);
    }
  }

  /** Delete the bytes of doomed blobs, then let their digests be pushed again. */
  private async deleteBytes(doomed: DoomedBlob[]): Promise<void> {
    for (let i = 0; i < doomed.length; i += DELETE_CONCURRENCY) {
      await Promise.all(doomed.slice(i, i + DELETE_CONCURRENCY).map((b) => this.driver.delete(b.location)));
    }
    await this.index.forgetDoomed(doomed.map((b) => b.digest));
  }
}

interface Tally {
  blobs: number;
  bytes: number;
}

function count(report: Tally, blobs: DoomedBlob[]): void {
  report.blobs += blobs.length;
  report.bytes += blobs.reduce((n, b) => n + b.size, 0);
}
