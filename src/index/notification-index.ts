import type { Db } from './db';
import { SqliteIndexObject } from './connection';

// The notification outbox (migration "notify_outbox"): events waiting for their endpoint. Rows are written
// inside the transaction of the change they report (enqueue is called there), read in order by the sender,
// and deleted once delivered or dropped, so the table holds only what is still owed.

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

export class NotificationIndex extends SqliteIndexObject {
  private readonly s;

  constructor(private readonly db: Db) {
    super(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      enqueue: p('INSERT INTO notify_outbox (endpoint, repo, event, created_at) VALUES (?, ?, ?, ?)'),
      next: p('SELECT * FROM notify_outbox WHERE endpoint = ? ORDER BY seq LIMIT ?'),
      remove: p('DELETE FROM notify_outbox WHERE seq IN (SELECT value FROM json_each(?))'),
      failed: p('UPDATE notify_outbox SET attempts = attempts + 1, last_error = ? WHERE seq IN (SELECT value FROM json_each(?)) RETURNING seq, attempts'),
      expired: p('SELECT * FROM notify_outbox WHERE created_at < ? AND endpoint NOT IN (SELECT value FROM json_each(?)) ORDER BY seq LIMIT ?'),
      backlog: p(
        `SELECT endpoint, count(*) AS pending, sum(attempts > 0) AS failing, min(created_at) AS oldest,
                (SELECT last_error FROM notify_outbox f WHERE f.endpoint = o.endpoint AND f.attempts > 0 ORDER BY seq LIMIT 1) AS lastError
           FROM notify_outbox o GROUP BY endpoint ORDER BY endpoint`,
      ),
      endpointBacklog: p(
        `SELECT count(*) AS pending, coalesce(sum(attempts > 0), 0) AS failing, min(created_at) AS oldest
           FROM notify_outbox WHERE endpoint = ?`,
      ),
    };
  }

  /** Queue `event` (JSON) for each endpoint; call it inside the transaction of the change the event reports. */
  enqueue(endpoints: readonly string[], repo: string, event: string, now: number): Promise<void> {
    return this.run(() => {
      for (const endpoint of endpoints) this.s.enqueue.run(endpoint, repo, event, now);
    });
  }

  /** The oldest `n` undelivered events of an endpoint, in the order they were made. */
  next(endpoint: string, n: number): Promise<OutboxRow[]> {
    return this.run(() => (this.s.next.all(endpoint, n) as Row[]).map(fromRow));
  }

  /** Forget events: delivered, or dropped. */
  remove(seqs: readonly number[]): Promise<void> {
    return this.run(() => {
      if (seqs.length > 0) this.s.remove.run(JSON.stringify(seqs));
    });
  }

  /** Count a failed attempt on each event; returns each one's attempts so far. */
  failed(seqs: readonly number[], error: string): Promise<Map<number, number>> {
    return this.run(() => {
      const rows = this.db.transaction(() => this.s.failed.all(error.slice(0, 500), JSON.stringify(seqs)) as { seq: number; attempts: number }[])();
      return new Map(rows.map((r) => [r.seq, r.attempts]));
    });
  }

  /** Up to `n` events made before `before` (ms) for endpoints other than `except`, oldest first. */
  expired(before: number, except: readonly string[], n: number): Promise<OutboxRow[]> {
    return this.run(() => (this.s.expired.all(before, JSON.stringify(except), n) as Row[]).map(fromRow));
  }

  /** What each endpoint with undelivered events is owed. */
  backlog(): Promise<EndpointBacklog[]> {
    return this.run(() => (this.s.backlog.all() as EndpointBacklog[]).map((b) => ({ ...b, failing: b.failing ?? 0 })));
  }

  /** One endpoint's backlog (pending and failing 0, oldest null when it is owed nothing). */
  endpointBacklog(endpoint: string): Promise<Omit<EndpointBacklog, 'endpoint' | 'lastError'>> {
    return this.run(() => this.s.endpointBacklog.get(endpoint) as Omit<EndpointBacklog, 'endpoint' | 'lastError'>);
  }
}
