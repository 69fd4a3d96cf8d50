import { connectionOf, type SqliteConnection } from '../index/connection';
import type { Db } from '../index/db';
import type { StorageDriver } from '../storage/driver';
import { highestStoredSeq, openSegmentKey, segmentKey } from './layout';

// The reference journal: the index's triggers leave one JSON record per change in refs_outbox (migration
// 6); flush() writes the records not yet in storage, one line per record with its sequence number, and a
// write is answered only after its records are written (rebuild.ts replays them in order). Where the driver
// appends (local), each process keeps one open segment and syncs it at most every SYNC_EVERY_MS; records
// leave refs_outbox (itself synced with every write) only once synced, so after a power loss the next start
// writes again what the journal may have lost. Elsewhere (S3) each flush is one object, durable at once.
// Concurrent writers share one flush (group commit), as they share the index's WAL sync. It reads the
// outbox only while no index transaction is open (connection.ts): never records a transaction may roll back.

/** Records per segment at most: bounds one segment's memory (a retention run may change thousands at once). */
const MAX_RECORDS = 5000;
/**
 * This often, records made without a request to answer (background garbage collection, retention) are
 * written, and written records leave refs_outbox (an index write, kept off the request path).
 */
const PRUNE_EVERY_MS = 5000;

/** Appended records are synced this often: one data sync for every write in that time, off the request path. */
const SYNC_EVERY_MS = 1000;
/** An open segment (appended to) is given its final name at this size, or when its process stops. */
const ROTATE_BYTES = 16 * 1024 * 1024;

/** The record of a floor row: it numbers the records after it and is never written to storage. */
const FLOOR = '';

/** Number new records after `seq` (at least): an index restored from a backup must not reuse later numbers. */
export function raiseSequenceFloor(db: Db, seq: number): void {
  const last = db.prepare('SELECT coalesce(max(seq), 0) FROM refs_outbox').pluck().get() as number;
  if (seq > last) db.prepare('INSERT INTO refs_outbox (seq, record) VALUES (?, ?)').run(seq, FLOOR);
}

export class RefJournal {
  private readonly s;
  /** Every record up to this sequence number is written to storage, and up to `synced` durably. */
  private flushed = 0;
  private synced = 0;
  private pruned = 0;
  private syncTimer?: NodeJS.Timeout;
  private running: Promise<void> | null = null;
  private pruneTimer?: NodeJS.Timeout;
  /** This process's open segment, where the driver can append. */
  private open?: { key: string; first: number; last: number; bytes: number };
  private readonly conn: SqliteConnection;

  constructor(
    private readonly db: Db,
    private readonly driver: StorageDriver,
  ) {
    this.conn = connectionOf(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      last: p('SELECT coalesce(max(seq), 0) FROM refs_outbox').pluck(),
      pending: p('SELECT seq, record FROM refs_outbox WHERE seq > ? ORDER BY seq LIMIT ?'),
      // New records are numbered max(seq) + 1 (migration 7): the newest row stays, as a floor once written.
      prune: p('DELETE FROM refs_outbox WHERE seq <= ? AND seq < (SELECT max(seq) FROM refs_outbox)'),
      toFloor: p(`UPDATE refs_outbox SET record = '${FLOOR}' WHERE seq <= ? AND record != '${FLOOR}'`),
    };
  }

  /**
   * Before the first write: number new records after every record storage holds (an index restored from an
   * older backup must not reuse the numbers of later segments), then write what an earlier process left.
   */
  async start(pruneInBackground = true): Promise<void> {
    const highest = await highestStoredSeq(this.driver);
    await this.conn.whenIdle(() => this.db.transaction(() => raiseSequenceFloor(this.db, highest)).immediate());
    // Records numbered below what storage holds were written by whoever numbered them: here only what is new.
    this.flushed = this.synced = this.pruned = Math.min(highest, (await this.conn.whenIdle(() => this.firstPending())) - 1);
    await this.flush();
    if (pruneInBackground) {
      this.pruneTimer = setInterval(() => void this.flush().then(() => this.prune()).catch(() => undefined), PRUNE_EVERY_MS);
      this.pruneTimer.unref();
      this.syncTimer = setInterval(() => void this.sync().catch(() => undefined), SYNC_EVERY_MS);
      this.syncTimer.unref();
    }
  }

  private firstPending(): number {
    const row = this.s.pending.get(0, 1) as { seq: number } | undefined;
    return row ? row.seq : Number.MAX_SAFE_INTEGER;
  }

  /** Resolves once every record committed before the call is in storage; rejects if writing it fails. */
  async flush(): Promise<void> {
    const target = await this.conn.whenIdle(() => this.s.last.get() as number);
    while (this.flushed < target) {
      if (this.running) {
        await this.running;
        continue;
      }
      this.running = this.writeSegment().finally(() => (this.running = null));
      await this.running;
    }
  }

  private async writeSegment(): Promise<void> {
    const rows = await this.conn.whenIdle(() => this.s.pending.all(this.flushed, MAX_RECORDS) as { seq: number; record: string }[]);
    if (rows.length === 0) return;
    const lines = rows.filter((r) => r.record !== FLOOR).map((r) => `{"s":${r.seq},${r.record.slice(1)}\n`);
    const first = rows[0]!.seq;
    const last = rows[rows.length - 1]!.seq;
    const data = Buffer.from(lines.join(''));
    if (lines.length === 0) {
      this.flushed = last; // only floors: nothing to write (synced follows with the next real record)
    } else if (this.driver.appendRecord) {
      this.open ??= { key: openSegmentKey(first), first, last, bytes: 0 };
      await this.driver.appendRecord(this.open.key, data);
      this.open.last = last;
      this.open.bytes += data.length;
      this.flushed = last;
      if (this.open.bytes >= ROTATE_BYTES) await this.closeSegment();
    } else {
      await this.driver.putRecord(segmentKey(first, last), data);
      this.flushed = this.synced = last;
    }
  }

  /** Make what was appended durable (runs between flushes: they share `running`). */
  private async sync(): Promise<void> {
    if (this.synced >= this.flushed || !this.open) return;
    while (this.running) await this.running;
    const open = this.open;
    if (!open) return;
    const upTo = this.flushed;
    this.running = this.driver.syncRecord!(open.key).then(() => void (this.synced = Math.max(this.synced, upTo)));
    try {
      await this.running;
    } finally {
      this.running = null;
    }
  }

  /** Sync the open segment and give it its final name, with the range it holds. */
  private async closeSegment(): Promise<void> {
    const open = this.open;
    if (!open) return;
    await this.driver.syncRecord!(open.key);
    this.synced = this.flushed;
    this.open = undefined;
    await this.driver.renameRecord!(open.key, segmentKey(open.first, open.last));
  }

  /** Drop the records storage holds durably from refs_outbox. */
  async prune(): Promise<void> {
    const upTo = this.synced;
    if (upTo <= this.pruned || !this.db.open) return;
    await this.conn.whenIdle(() => {
      if (!this.db.open) return;
      this.db.transaction(() => {
        this.s.prune.run(upTo);
        this.s.toFloor.run(upTo);
      })();
    });
    this.pruned = Math.max(this.pruned, upTo);
  }

  /** Write what is left, stop pruning; with `prune`, drop what was written from the outbox. */
  async close(prune = true): Promise<void> {
    clearInterval(this.pruneTimer);
    clearInterval(this.syncTimer);
    await this.flush();
    await this.running;
    await this.closeSegment();
    if (prune) await this.prune();
  }
}

/**
 * For operator commands: write every record the index holds that storage may not have yet. The records stay
 * in the outbox: a server running meanwhile writes them into its own open segment too, which must hold every
 * record from its first on (rebuild skips what an earlier-starting segment has applied), so only it prunes.
 */
export async function flushJournal(db: Db, driver: StorageDriver): Promise<void> {
  const journal = new RefJournal(db, driver);
  await journal.start(false);
  await journal.close(false);
}
