import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import { dedicatedClient, describe, serverOf } from './connect';

// Changes to the rows that reads may be answered from memory (read-cache.ts), as PostgreSQL announces them:
// triggers on those tables (schema-v3.ts) NOTIFY the repository of every changed row when its transaction
// commits, whichever replica or operator command made it, and a connection of this replica LISTENs.
//
// How current is it? PostgreSQL delivers notifications to a listener in commit order. Every `staleMs / 4`
// this replica NOTIFYs itself on a channel of its own; when that ping comes back, every change committed
// before it was sent has been heard. `fresh()` holds while the last ping that came back was sent less than
// `staleMs` ago: a change is seen here within `staleMs` at worst (about a millisecond when all is well).

export const CHANGES_CHANNEL = 'tsregistry_changes';
/** The payload of a change to rows of every repository (a TRUNCATE). */
export const ALL_REPOSITORIES = '*';

const RECONNECT_MS = 1000;

export interface ChangeFeedOptions {
  /** A change committed anywhere is heard here within this many milliseconds, or reads stop trusting memory. */
  staleMs: number;
  /** Told each change: the repository whose rows changed, or null for any (also after the feed reconnects). */
  onChange: (repo: string | null) => void;
  log: { info(msg: string): void; warn(msg: string): void };
}

export class ChangeFeed {
  private client?: pg.Client;
  private readonly pingChannel = `tsregistry_ping_${randomBytes(8).toString('hex')}`;
  private nextPing = 0;
  /** The ping sent and not yet heard back (one at a time: a connection gone quiet must not pile them up). */
  private pending: { n: number; sent: number } | null = null;
  /** When the last ping that came back was sent. */
  private heardUpTo = -Infinity;
  private timer?: NodeJS.Timeout;
  private reconnect?: NodeJS.Timeout;
  private closed = false;
  private down = false;
  private connecting: Promise<void> | null = null;

  constructor(
    private readonly url: string,
    private readonly opts: ChangeFeedOptions,
  ) {}

  /** Connect and listen (a failure is logged and retried: reads go to PostgreSQL meanwhile). */
  async start(): Promise<void> {
    this.timer = setInterval(() => this.ping(), Math.max(1, Math.floor(this.opts.staleMs / 4)));
    this.timer.unref();
    await this.connect();
  }

  /** Whether every change committed more than staleMs ago has been heard. */
  fresh(): boolean {
    return performance.now() - this.heardUpTo < this.opts.staleMs;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.reconnect);
    await this.connecting;
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }

  private connect(): Promise<void> {
    this.connecting ??= this.connectOnce().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async connectOnce(): Promise<void> {
    const client = dedicatedClient(this.url, 'tsregistry-changes');
    client.on('error', () => this.drop(client));
    client.on('end', () => this.drop(client));
    client.on('notification', (n) => this.heard(n.channel, n.payload ?? ''));
    try {
      await client.connect();
      await client.query(`LISTEN ${CHANGES_CHANNEL}; LISTEN ${this.pingChannel}`);
    } catch (err) {
      await client.end().catch(() => undefined);
      this.fail(`cannot listen for changes at ${serverOf(this.url)}: ${describe(err, this.url)}`);
      return;
    }
    if (this.closed) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    // What changed while nobody listened is unknown: forget everything, and trust memory again once a ping
    // sent from now on comes back.
    this.opts.onChange(null);
    if (this.down) this.opts.log.info(`listening for index changes at ${serverOf(this.url)} again`);
    this.down = false;
    this.ping();
  }

  private ping(): void {
    const client = this.client;
    if (!client || this.pending) return;
    const n = this.nextPing++;
    this.pending = { n, sent: performance.now() };
    client.query('SELECT pg_notify($1, $2)', [this.pingChannel, String(n)]).catch(() => this.drop(client));
  }

  private heard(channel: string, payload: string): void {
    if (channel === CHANGES_CHANNEL) {
      this.opts.onChange(payload === ALL_REPOSITORIES ? null : payload);
      return;
    }
    if (channel !== this.pingChannel) return;
    if (this.pending?.n !== Number(payload)) return;
    this.heardUpTo = this.pending.sent;
    this.pending = null;
  }

  private drop(client: pg.Client): void {
    if (this.client !== client) return;
    this.client = undefined;
    client.end().catch(() => undefined);
    this.fail(`lost the connection that listens for index changes at ${serverOf(this.url)}`);
  }

  /** Stop trusting memory, say so once per outage, and try again in a while. */
  private fail(message: string): void {
    this.heardUpTo = -Infinity;
    this.pending = null;
    if (this.closed) return;
    if (!this.down) this.opts.log.warn(`${message}; manifest reads go to PostgreSQL until it is back`);
    this.down = true;
    clearTimeout(this.reconnect);
    this.reconnect = setTimeout(() => void this.connect(), RECONNECT_MS);
    this.reconnect.unref();
  }
}
