import type pg from 'pg';
import type { UploadHold, UploadLocks } from '../upload-locks';
import { dedicatedClient, describe, serverOf } from './connect';
import { sessionHolds, uploadLockKey } from './locks';
import { IndexUnavailableError } from './unavailable';

// Uploads taken by this replica: a session-level advisory lock per upload, all on one connection of its
// own (opened at the first chunked upload). PostgreSQL releases them when that session ends, so an upload
// whose replica died is free again at once. A broken connection ('error' / 'end', or any failed query,
// after which whether a lock was granted is unknown) ends the session and aborts every hold on it; a
// session cut off without noticing is caught by confirm(), which asks the server before anything is recorded.

interface Session {
  client: pg.Client;
  /** Aborted when the session is given up: every hold on it is broken. */
  ended: AbortController;
}

export class PostgresUploadLocks implements UploadLocks {
  private current?: Session;
  private opening?: Promise<Session>;
  private closed = false;

  constructor(private readonly url: string) {}

  async tryTake(id: string): Promise<UploadHold | null> {
    const session = await this.open();
    const key = uploadLockKey(id);
    let got: boolean;
    try {
      got = (await session.client.query('SELECT pg_try_advisory_lock($1) AS got', [key.toString()])).rows[0]?.got === true;
    } catch (err) {
      throw this.unavailable(session, err);
    }
    if (!got) return null;
    return {
      lost: session.ended.signal,
      confirm: () => this.confirm(session, key),
      release: () => this.release(session, key),
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.opening?.catch(() => undefined);
    if (this.current) this.end(this.current);
  }

  private async open(): Promise<Session> {
    if (this.closed) throw new IndexUnavailableError('the index is closing');
    if (this.current) return this.current;
    this.opening ??= this.connect().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async connect(): Promise<Session> {
    const client = dedicatedClient(this.url, 'tsregistry-uploads');
    const session: Session = { client, ended: new AbortController() };
    client.on('error', () => this.end(session));
    client.on('end', () => this.end(session));
    try {
      await client.connect();
    } catch (err) {
      throw this.unavailable(session, err);
    }
    if (!session.ended.signal.aborted) this.current = session;
    return session;
  }

  private async confirm(session: Session, key: bigint): Promise<boolean> {
    if (session.ended.signal.aborted) return false;
    try {
      return await sessionHolds(session.client, key);
    } catch (err) {
      this.unavailable(session, err);
      return false;
    }
  }

  private async release(session: Session, key: bigint): Promise<void> {
    if (session.ended.signal.aborted) return;
    try {
      await session.client.query('SELECT pg_advisory_unlock($1)', [key.toString()]);
    } catch (err) {
      this.unavailable(session, err); // ending the session releases the lock
    }
  }

  /** Give the session up (which releases its locks) and say why, as the 503 a request answers. */
  private unavailable(session: Session, err: unknown): IndexUnavailableError {
    this.end(session);
    return new IndexUnavailableError(`the PostgreSQL index at ${serverOf(this.url)} is unavailable for upload locks: ${describe(err, this.url)}`);
  }

  private end(session: Session): void {
    if (session.ended.signal.aborted) return;
    session.ended.abort();
    if (this.current === session) this.current = undefined; // the next tryTake opens a new session
    session.client.end().catch(() => undefined);
  }
}
