import type pg from 'pg';
import type { Leadership } from '../leader';
import { dedicatedClient, describe, serverOf } from './connect';
import { LEADER_LOCK, sessionHolds } from './locks';

// Leadership among replicas: a session-level advisory lock held on a connection of its own. PostgreSQL
// releases it when that session ends (the process dies, or its connection breaks), and another replica,
// trying every `pollMs`, takes it over. A leader that lost its connection knows at once ('error' / 'end')
// and stops leading; confirm() asks the server before each run, so a leader cut off without noticing
// (no packet yet) does not run a job against a lock it no longer holds.


export class PostgresLeadership implements Leadership {
  held = false;
  private client?: pg.Client;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private attempt: Promise<void> | null = null;
  private readonly listeners: ((held: boolean) => void)[] = [];

  constructor(
    private readonly url: string,
    private readonly log: { info(msg: string): void; warn(msg: string): void },
    private readonly pollMs = 2000,
  ) {}

  /**
   * Try at once, then every pollMs: while not leading, to take over; while leading, to confirm it (an idle
   * connection silently dropped would otherwise keep a stale `held`, and the notifier sending).
   */
  async start(): Promise<void> {
    await this.tryToLead();
    this.timer = setInterval(() => void (this.held ? this.confirm() : this.tryToLead()), this.pollMs);
    this.timer.unref();
  }

  onChange(listener: (held: boolean) => void): void {
    this.listeners.push(listener);
  }

  async confirm(): Promise<boolean> {
    const client = this.client;
    if (!this.held || !client) return false;
    try {
      if (await sessionHolds(client, LEADER_LOCK)) return true;
      this.lose('its session no longer holds the lock');
    } catch {
      this.drop(client, 'its connection to PostgreSQL broke');
    }
    return false;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.attempt;
    const client = this.client;
    this.client = undefined;
    if (this.held) this.set(false);
    await client?.end().catch(() => undefined); // ending the session releases the lock at once
  }

  private tryToLead(): Promise<void> {
    if (this.held || this.closed || this.attempt) return this.attempt ?? Promise.resolve();
    this.attempt = this.attemptOnce().finally(() => (this.attempt = null));
    return this.attempt;
  }

  private async attemptOnce(): Promise<void> {
    try {
      if (!this.client) {
        // Bounded: a dead socket must not leave confirm() (and the background work waiting on it) hanging.
        const client = dedicatedClient(this.url, 'tsregistry-leader');
        client.on('error', () => this.drop(client, 'its connection to PostgreSQL broke'));
        client.on('end', () => this.drop(client, 'its connection to PostgreSQL ended'));
        await client.connect();
        this.client = client;
      }
      const r = await this.client.query('SELECT pg_try_advisory_lock($1) AS got', [LEADER_LOCK.toString()]);
      if (r.rows[0]?.got && !this.closed) this.set(true);
    } catch (err) {
      if (!this.closed) this.log.warn(`leadership: cannot reach PostgreSQL at ${serverOf(this.url)}: ${describe(err, this.url)}`);
      const client = this.client;
      this.client = undefined;
      await client?.end().catch(() => undefined);
    }
  }

  private drop(client: pg.Client, why: string): void {
    if (this.client !== client) return;
    this.client = undefined;
    this.lose(why);
    client.end().catch(() => undefined);
  }

  private lose(why: string): void {
    if (!this.held) return;
    if (!this.closed) this.log.warn(`leadership lost: ${why}; background work stops here until this replica leads again`);
    this.set(false);
  }

  private set(held: boolean): void {
    this.held = held;
    if (held) this.log.info('leading: this replica runs the background work');
    for (const l of this.listeners) l(held);
  }
}
