import type { Db } from './db';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase } from './database';
import { sql } from './sql';

// Totals for monitoring: what the store holds, read from the index (never by walking storage). Each is
// one aggregate over a table (a scan of its smallest index): cheap, but callers cache it for a few
// seconds rather than run it on every scrape.

export interface StoreTotals {
  /** Blobs recorded, and their bytes (each stored once, however many repositories use it). */
  blobs: number;
  blobBytes: number;
  /** Unfinished uploads, and the bytes they have staged so far. */
  uploads: number;
  uploadBytes: number;
  repositories: number;
}

const totals = sql<StoreTotals>(
  `SELECT (SELECT count(*) FROM blobs) AS blobs, (SELECT coalesce(sum(size), 0) FROM blobs) AS "blobBytes",
          (SELECT count(*) FROM uploads) AS uploads, (SELECT coalesce(sum(size), 0) FROM uploads) AS "uploadBytes",
          (SELECT count(*) FROM repositories) AS repositories`,
);

export class StatsIndex extends IndexObject {
  constructor(db: Db | IndexDatabase) {
    super(databaseOf(db));
  }

  async totals(): Promise<StoreTotals> {
    return (await this.sql.get(totals))!;
  }
}
