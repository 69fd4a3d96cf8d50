import type { Db } from './db';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase } from './database';
import { sql } from './sql';
import { inJsonList, jsonRows, sqlWith } from './json-list';

// The notification outbox (migration "notify_outbox"): events waiting for their endpoint. Rows are written
// inside the transaction of the change they report (enqueue is called there), read in order by the sender,
// and deleted once delivered or dropped, so the table holds only what is still owed. seq is the delivery
// order: SQLite numbers rows max(seq) + 1, PostgreSQL from an identity sequence; there every write holds
// one lock to its commit (postgres/database.ts), so numbers are committed in the order they are taken.

export interface OutboxRow {
  seq: number;
  endpoint: string;
  repo: string;
  /** The event JSON, exactly as it is sent. */
  event: string;
  createdAt: number;
  attempts: number;
  lastError: string | null;
}

export interface EndpointBacklog {
  endpoint: string;
  pending: number;
  /** Undelivered events that failed at least once. */
  failing: number;
  /** created_at (ms) of the oldest undelivered event, or null. */
  oldest: number | null;
  /** The last error of the oldest failing event, or null. */
  lastError: string | null;
}

interface Row {
  seq: number;
  endpoint: string;
  repo: string;
  event: string;
  created_at: number;
  attempts: number;
  last_error: string | null;
}

const fromRow = (r: Row): OutboxRow => ({
  seq: r.seq,
  endpoint: r.endpoint,
  repo: r.repo,
  event: r.event,
  createdAt: r.created_at,
  attempts: r.attempts,
  lastError: r.last_error,
});

const bySeqs = inJsonList('seq', 'seqs', 'BIGINT');
const FAILING = 'count(CASE WHEN attempts > 0 THEN 1 END)';

const Q = {
  // One row per endpoint, in one statement: an event is queued for all of them or for none.
  enqueue: sqlWith(
    jsonRows('endpoints'),
    (rows) => `INSERT INTO notify_outbox (endpoint, repo, event, created_at) SELECT j.value, @repo, @event, @now FROM ${rows}`,
  ),
  next: sql<Row>('SELECT * FROM notify_outbox WHERE endpoint = ? ORDER BY seq LIMIT ?'),
  remove: sqlWith(bySeqs, (l) => `DELETE FROM notify_outbox WHERE ${l}`),
  failed: sqlWith<{ seq: number; attempts: number }>(
    bySeqs,
    (l) => `UPDATE notify_outbox SET attempts = attempts + 1, last_error = @error WHERE ${l} RETURNING seq, attempts`,
  ),
  expired: sqlWith<Row>(
    inJsonList('endpoint', 'except'),
    (l) => `SELECT * FROM notify_outbox WHERE created_at < @before AND NOT (${l}) ORDER BY seq LIMIT @limit`,
  ),
  backlog: sql<EndpointBacklog>(
    `SELECT endpoint, count(*) AS pending, ${FAILING} AS failing, min(created_at) AS oldest,
            (SELECT last_error FROM notify_outbox f WHERE f.endpoint = o.endpoint AND f.attempts > 0 ORDER BY seq LIMIT 1) AS "lastError"
       FROM notify_outbox o GROUP BY endpoint ORDER BY endpoint`,
  ),
  endpointBacklog: sql<Omit<EndpointBacklog, 'endpoint' | 'lastError'>>(
    `SELECT count(*) AS pending, ${FAILING} AS failing, min(created_at) AS oldest FROM notify_outbox WHERE endpoint = ?`,
  ),
};

export class NotificationIndex extends IndexObject {
  constructor(db: Db | IndexDatabase) {
    super(databaseOf(db));
  }

  /** Queue `event` (JSON) for each endpoint; call it inside the transaction of the change the event reports. */
  async enqueue(endpoints: readonly string[], repo: string, event: string, now: number): Promise<void> {
    if (endpoints.length > 0) await this.sql.run(Q.enqueue, { endpoints: JSON.stringify(endpoints), repo, event, now });
  }

  /** The oldest `n` undelivered events of an endpoint, in the order they were made. */
  async next(endpoint: string, n: number): Promise<OutboxRow[]> {
    return (await this.sql.all(Q.next, endpoint, n)).map(fromRow);
  }

  /** Forget events: delivered, or dropped. */
  async remove(seqs: readonly number[]): Promise<void> {
    if (seqs.length > 0) await this.sql.run(Q.remove, { seqs: JSON.stringify(seqs) });
  }

  /** Count a failed attempt on each event; returns each one's attempts so far. */
  async failed(seqs: readonly number[], error: string): Promise<Map<number, number>> {
    if (seqs.length === 0) return new Map();
    const rows = await this.sql.all(Q.failed, { error: error.slice(0, 500), seqs: JSON.stringify(seqs) });
    return new Map(rows.map((r) => [r.seq, r.attempts]));
  }

  /** Up to `n` events made before `before` (ms) for endpoints other than `except`, oldest first. */
  async expired(before: number, except: readonly string[], n: number): Promise<OutboxRow[]> {
    return (await this.sql.all(Q.expired, { before, except: JSON.stringify(except), limit: n })).map(fromRow);
  }

  /** What each endpoint with undelivered events is owed. */
  backlog(): Promise<EndpointBacklog[]> {
    return this.sql.all(Q.backlog);
  }

  /** One endpoint's backlog (pending and failing 0, oldest null when it is owed nothing). */
  async endpointBacklog(endpoint: string): Promise<Omit<EndpointBacklog, 'endpoint' | 'lastError'>> {
    return (await this.sql.get(Q.endpointBacklog, endpoint))!;
  }
}
