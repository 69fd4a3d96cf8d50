import { promises as fs } from 'node:fs';
import { connectionOf, type Gate } from './connection';
import type { Db } from './db';

/**
 * Makes committed index transactions durable without blocking the event loop.
 *
 * The index runs in WAL mode with synchronous = NORMAL: a commit appends to the WAL (page cache) and
 * returns; SQLite itself fsyncs only around checkpoints. Before a write is acknowledged, flush()
 * fdatasyncs the WAL on libuv's threadpool, so an acknowledged push survives power loss as it did with
 * synchronous = FULL, but the event loop no longer stalls on each commit's sync (BENCHMARKS.md, "Design
 * measurements"). Concurrent writers share one fdatasync
 * (group commit): a flush joins the running sync, and if that one started before its commit, the next.
 *
 * "Committed" is counted with SQLite's total_changes() (rows changed on this connection): every write
 * bumps it, so flush() knows whether anything since the last sync is still in the page cache. It is read
 * only while no transaction is open (connection.ts): an open one's writes are counted before their COMMIT
 * reaches the WAL, and a sync covering that count would be taken for theirs.
 */
export class WalSync {
  private readonly changes: () => number;
  /** total_changes() as of the start of the last sync that completed. */
  private synced: number;
  private running: Promise<void> | null = null;
  private readonly gate: Gate;

  constructor(
    db: Db,
    /** fdatasync of the WAL file; replaceable for tests. */
    private readonly syncWal: () => Promise<void> = () => fdatasyncIfExists(`${db.name}-wal`),
    /** Told how long each sync took, in seconds (metrics). */
    private readonly onSync?: (seconds: number) => void,
  ) {
    this.gate = connectionOf(db);
    const stmt = db.prepare('SELECT total_changes()').pluck();
    this.changes = db.memory ? () => 0 : () => stmt.get() as number;
    this.synced = this.changes();
  }

  /** Resolves once every transaction committed before the call is on disk; rejects if the sync fails. */
  async flush(): Promise<void> {
    let target: number | undefined;
    while (target === undefined || this.synced < target) {
      const open = this.gate.idle();
      if (open) {
        await open;
        continue;
      }
      target ??= this.changes();
      if (this.synced >= target) return;
      if (this.running) {
        await this.running; // it may have started before our commit: check again once it is done
        continue;
      }
      const covers = this.changes();
      this.running = this.timedSync()
        .then(() => void (this.synced = covers)) // one sync at a time, so covers only grows
        .finally(() => (this.running = null));
      await this.running;
    }
  }

  private async timedSync(): Promise<void> {
    if (!this.onSync) return this.syncWal();
    const start = process.hrtime.bigint();
    try {
      await this.syncWal();
    } finally {
      this.onSync(Number(process.hrtime.bigint() - start) / 1e9);
    }
  }
}

async function fdatasyncIfExists(file: string): Promise<void> {
  let handle: fs.FileHandle;
  try {
    handle = await fs.open(file, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // no WAL: nothing written since the last close
    throw err;
  }
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
