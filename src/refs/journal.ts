import { randomBytes } from 'node:crypto';
import type { Db } from '../index/db';
import type { StorageDriver } from '../storage/driver';

// The reference journal: the index's triggers leave one JSON record per change in refs_outbox (migration
// 6); flush() writes the records not yet in storage as one segment object, refs/journal/<first>-<last>-<id>.jsonl,
// one line per record with its sequence number. A write is answered only after its records are there, so
// storage alone describes every acknowledged push (rebuild.ts replays the segments in order).
// Concurrent writers share one segment (group commit), as they share the index's WAL sync.

export const JOURNAL_PREFIX = 'refs/journal/';
const SEQ_DIGITS = 16;
/** Records per segment at most: bounds one segment's memory (a retention run may change thousands at once). */
const MAX_RECORDS = 5000;
/**
 * This often, records made without a request to answer (background garbage collection, retention) are
 * written, and written records leave refs_outbox (an index write, kept off the request path).
 */
const PRUNE_EVERY_MS = 5000;

export const segmentKey = (first: number, last: number) =>
  `${JOURNAL_PREFIX}${String(first).padStart(SEQ_DIGITS, '0')}-${String(last).padStart(SEQ_DIGITS, '0')}-${randomBytes(4).toString('hex')}.jsonl`;

/** First and last sequence numbers of a segment key, or undefined if the key is no segment. */
export function segmentRange(key: string): { first: number; last: number } | undefined {
  const m = /^refs\/journal\/(\d{16})-(\d{16})-[0-9a-f]{8}\.jsonl$/.exec(key);
  return m ? { first: Number(m[1]), last: Number(m[2]) } : undefined;
}

export class RefJournal {
  private readonly s;
  /** Every record up to this sequence number is in storage. */
  private flushed = 0;
  private pruned = 0;
  private running: Promise<void> | null = null;
  private pruneTimer?: NodeJS.Timeout;

  constructor(
    private readonly db: Db,
    private readonly driver: StorageDriver,
  ) {
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      last: p('SELECT coalesce(max(seq), 0) FROM refs_outbox').pluck(),
      pending: p('SELECT seq, record FROM refs_outbox WHERE seq > ? ORDER BY seq LIMIT ?'),
      prune: p('DELETE FROM refs_outbox WHERE seq <= ?'),
      floor: p("SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'refs_outbox'), 0)").pluck(),
      setFloor: p("UPDATE sqlite_sequence SET seq = ? WHERE name = 'refs_outbox'"),
      insertFloor: p("INSERT INTO sqlite_sequence (name, seq) SELECT 'refs_outbox', ? WHERE NOT EXISTS (SELECT 1 FROM sqlite_sequence WHERE name = 'refs_outbox')"),
    };
  }

  /**
   * Before the first write: number new records after every record storage holds (an index restored from an
   * older backup must not reuse the numbers of later segments), then write what an earlier process left.
   */
  async start(pruneInBackground = true): Promise<void> {
    let highest = 0;
    for await (const { key } of this.driver.listRecords(JOURNAL_PREFIX)) highest = Math.max(highest, segmentRange(key)?.last ?? 0);
    this.db.transaction(() => {
      if ((this.s.floor.get() as number) >= highest) return;
      this.s.insertFloor.run(highest);
      this.s.setFloor.run(highest);
    }).immediate();
    // Records numbered below what storage holds were written by whoever numbered them: here only what is new.
    this.flushed = this.pruned = Math.min(highest, this.firstPending() - 1);
    await this.flush();
    if (pruneInBackground) {
      this.pruneTimer = setInterval(() => void this.flush().then(() => this.prune(), () => undefined), PRUNE_EVERY_MS);
      this.pruneTimer.unref();
    }
  }

  private firstPending(): number {
    const row = this.s.pending.get(0, 1) as { seq: number } | undefined;
    return row ? row.seq : Number.MAX_SAFE_INTEGER;
  }

  /** Resolves once every record committed before the call is in storage; rejects if writing it fails. */
  async flush(): Promise<void> {
    const target = this.s.last.get() as number;
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
    const rows = this.s.pending.all(this.flushed, MAX_RECORDS) as { seq: number; record: string }[];
    if (rows.length === 0) return;
    const lines = rows.map((r) => `{"s":${r.seq},${r.record.slice(1)}\n`);
    const first = rows[0]!.seq;
    const last = rows[rows.length - 1]!.seq;
    await this.driver.putRecord(segmentKey(first, last), Buffer.from(lines.join('')));
    this.flushed = last;
  }

  /** Drop the records storage holds from refs_outbox. */
  prune(): void {
    if (this.flushed <= this.pruned || !this.db.open) return;
    this.s.prune.run(this.flushed);
    this.pruned = this.flushed;
  }

  /** Write what is left, drop it from the outbox, stop pruning. */
  async close(): Promise<void> {
    clearInterval(this.pruneTimer);
    await this.flush();
    this.prune();
  }
}

/** For operator commands: write every record the index holds that storage may not have yet. */
export async function flushJournal(db: Db, driver: StorageDriver): Promise<void> {
  const journal = new RefJournal(db, driver);
  await journal.start(false);
  await journal.close();
}
