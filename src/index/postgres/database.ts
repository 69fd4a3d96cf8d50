import type pg from 'pg';
import { makeTx, type IndexDatabase, type Tx } from '../database';
import type { Query, RunResult, Sql } from '../sql';
import { describe, serverOf } from './connect';
import { WRITE_LOCK } from './locks';
import type { ReadCache } from '../read-cache';
import { bindValues, toPgStatement, type PgStatement } from './sql';
import { IndexUnavailableError } from './unavailable';
import { PostgresUploadLocks } from './upload-locks';

// The PostgreSQL index database: a pool shared by the index objects. Reads outside a transaction take any
// pooled connection; a transaction holds one from BEGIN to COMMIT. Every write, of every replica, runs
// under one advisory lock (WRITE_LOCK) held to its commit, as SQLite's writes run under its write lock:
// the index's checks-then-writes need no retry loop, writers touching the same rows cannot deadlock, and
// sequence numbers (the refs and notification outboxes) are committed in the order they were taken.
// A statement that writes outside a transaction is made one (see Query.lock for the exceptions). Reads never
// wait for a lock.
//
// One write shares the lock instead: recording an upload's verified digest before its bytes move (BlobStore
// .commit) must not interleave with garbage collection deciding what to delete (a write transaction, as of
// every release), but two such writes, each on its own upload's row, need not wait for each other.

// One round trip opens a write transaction: its commit does not wait for the WAL flush (FLUSH does that,
// outside the lock), and it takes its lock(s).
const OPEN = 'BEGIN; SET LOCAL synchronous_commit = off';
const BEGIN = `${OPEN}; SELECT pg_advisory_xact_lock(${WRITE_LOCK})`;
const BEGIN_SHARED = `${OPEN}; SELECT pg_advisory_xact_lock_shared(${WRITE_LOCK})`;
// A commit that waits for its WAL flush, which covers every commit before it. It must write WAL of its own
// (a transactional message, read by no one), or PostgreSQL commits it without flushing (txid_current() alone
// does not). The server's synchronous_commit (on by default) then decides, as it would for the write itself.
const FLUSH = "SELECT pg_logical_emit_message(true, 'tsregistry', '')";

export { IndexUnavailableError };

// SQLSTATE classes that mean "no usable connection", not a bad statement: 08 connection exception,
// 57P01-03 the server shutting down or not yet accepting, 53300 too many connections.
const UNAVAILABLE_STATES = /^(08|57P0[1-3]|53300)/;
const UNAVAILABLE_ERRNOS = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

export class PostgresDatabase implements IndexDatabase {
  readonly dialect = 'postgres';
  private readonly server: string;
  private readonly statements = new Map<string, PgStatement>();
  private readonly transactions = new WeakMap<Tx, PgTransaction>();
  private readonly unbound: Sql;
  readonly uploadLocks: PostgresUploadLocks;

  onTransaction?: (seconds: number) => void;

  /**
   * `cache`: where reads that may be (Query.cached) are answered from, outside transactions; `onClose`: what
   * else closing this database ends (the cache's change feed).
   */
  constructor(
    readonly pool: pg.Pool,
    private readonly url: string,
    readonly cache?: ReadCache,
    private readonly onClose?: () => Promise<void>,
  ) {
    this.server = serverOf(url);
    this.unbound = new PgStatements(this, pool);
    this.uploadLocks = new PostgresUploadLocks(url);
  }

  get<Row>(q: Query<Row>, ...params: unknown[]): Promise<Row | undefined> {
    return this.alone(q, (s) => s.get(q, ...params));
  }

  all<Row>(q: Query<Row>, ...params: unknown[]): Promise<Row[]> {
    return this.alone(q, (s) => s.all(q, ...params));
  }

  run(q: Query, ...params: unknown[]): Promise<RunResult> {
    return this.alone(q, (s) => s.run(q, ...params));
  }

  /**
   * A statement outside any transaction: a write in a transaction of its own, under its lock (Query.lock),
   * sent with its BEGIN and COMMIT in one go.
   */
  private alone<R>(q: Query, run: (s: Sql) => Promise<R>): Promise<R> {
    if (!q.writes || q.lock === 'none') return run(this.unbound);
    return this.begin((tx) => run(this.sqlOf(tx)), { lock: q.lock, single: true });
  }

  sqlOf(tx: Tx): Sql {
    const t = this.transactions.get(tx);
    if (!t) throw new Error('not a transaction of this PostgreSQL index');
    return t.statements;
  }

  async close(): Promise<void> {
    await this.onClose?.();
    await this.uploadLocks.close();
    await this.pool.end();
  }

  /** Run `q` on `client` (prepared there once, by its id). */
  async query(client: pg.Pool | pg.PoolClient, q: Query, params: unknown[]): Promise<pg.QueryResult> {
    let st = this.statements.get(q.id);
    if (!st) this.statements.set(q.id, (st = toPgStatement(q.postgres)));
    try {
      return await client.query({ name: q.id, text: st.text, values: bindValues(st, params), rowMode: q.pluck ? 'array' : undefined } as pg.QueryConfig);
    } catch (err) {
      throw this.translate(err);
    }
  }

  /** A lost or refused connection as IndexUnavailableError (a 503 to clients); anything else as it is. */
  translate(err: unknown): unknown {
    const e = err as { code?: string; message?: string };
    const lost =
      (typeof e?.code === 'string' && (UNAVAILABLE_STATES.test(e.code) || UNAVAILABLE_ERRNOS.has(e.code))) ||
      /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Cannot use a pool after calling end/i.test(e?.message ?? '');
    return lost ? new IndexUnavailableError(`the PostgreSQL index at ${this.server} is unavailable: ${describe(err, this.url)}`) : err;
  }

  transaction<T>(fn: (tx: Tx) => Promise<T>, within?: Tx): Promise<T> {
    const outer = within && this.transactions.get(within);
    if (outer) return this.savepoint(fn, outer);
    return this.begin(fn);
  }

  /**
   * An outermost transaction under the write lock, or under it shared (`lock`: see Query.lock). `single`: fn
   * sends one statement, at once: its COMMIT follows it on the connection without waiting for its answer.
   */
  private async begin<T>(fn: (tx: Tx) => Promise<T>, { lock = 'write', single = false }: { lock?: 'write' | 'shared'; single?: boolean } = {}): Promise<T> {
    const start = this.onTransaction && process.hrtime.bigint();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.translate(err);
    }
    const t = new PgTransaction(this, client);
    const tx = this.txFor(t);
    let broken: unknown;
    // A checked-out client is ours to watch: a socket error (the server shutting down, a reset) is emitted
    // on it besides failing its query, and an 'error' nobody hears ends the process.
    const onError = (err: Error) => (broken ??= this.translate(err));
    client.on('error', onError);
    try {
      // BEGIN is not awaited: fn's first statement follows it on the connection at once (the pool's
      // connections pipeline), and PostgreSQL runs it the moment the lock is granted. A BEGIN that failed (its
      // lock wait cancelled by a statement_timeout, say) may leave the connection in an aborted transaction:
      // it is dropped, never handed to the next caller.
      t.sendAhead(lock === 'shared' ? BEGIN_SHARED : BEGIN, (err) => (broken ??= err));
      if (single) return await this.commitSingle(t, sendNow(() => fn(tx)));
      let result: T;
      try {
        result = await fn(tx);
      } catch (err) {
        await t.exec('ROLLBACK').catch((e) => (broken = e));
        throw err;
      }
      await t.commit();
      return result;
    } catch (err) {
      broken ??= err instanceof IndexUnavailableError ? err : undefined;
      throw err;
    } finally {
      t.active = false;
      // This replica's own change is seen at once here: what memory holds goes before the write is
      // acknowledged (other replicas hear of it through the change feed). A write of an upload's own row
      // (lock 'shared') changes nothing a cached read reads.
      if (t.wrote && lock === 'write') this.cache?.changed(null);
      // A connection that failed mid-transaction is dropped, never handed to the next caller (and keeps
      // the listener: a dying socket may report more).
      if (!(broken instanceof Error)) client.removeListener('error', onError);
      client.release(broken instanceof Error ? broken : undefined);
      if (start !== undefined) this.onTransaction!(Number(process.hrtime.bigint() - start) / 1e9);
    }
  }

  /**
   * Commit a transaction of one statement, `sent`, whose answer is still to come: the COMMIT goes right
   * behind it. If the statement failed, PostgreSQL answers the COMMIT with ROLLBACK: the statement's error
   * is what the caller gets.
   */
  private async commitSingle<T>(t: PgTransaction, sent: Promise<T>): Promise<T> {
    const committed = t.commit();
    const [statement, commit] = await Promise.allSettled([sent, committed]);
    if (statement.status === 'rejected') throw statement.reason;
    if (commit.status === 'rejected') throw commit.reason;
    return statement.value;
  }

  private async savepoint<T>(fn: (tx: Tx) => Promise<T>, outer: PgTransaction): Promise<T> {
    outer.check();
    const name = `sp${++outer.savepoints}`;
    // Not awaited either: fn's first statement follows it.
    outer.sendAhead(`SAVEPOINT ${name}`);
    try {
      // Not released: COMMIT releases it, an outer ROLLBACK TO drops it, and a later savepoint of this name
      // hides it. A round trip less while the write lock is held.
      return await fn(this.txFor(outer));
    } catch (err) {
      await outer.exec(`ROLLBACK TO SAVEPOINT ${name}; RELEASE SAVEPOINT ${name}`);
      throw err;
    } finally {
      outer.savepoints--;
    }
  }

  private txFor(t: PgTransaction): Tx {
    const tx = makeTx();
    this.transactions.set(tx, t);
    return tx;
  }
}

/** Runs statements on the pool, or on one transaction's connection. */
class PgStatements implements Sql {
  constructor(
    private readonly db: PostgresDatabase,
    private readonly client: pg.Pool | pg.PoolClient,
    private readonly t?: PgTransaction,
  ) {}

  async get<Row>(q: Query<Row>, ...params: unknown[]): Promise<Row | undefined> {
    return (await this.all(q, ...params))[0];
  }

  async all<Row>(q: Query<Row>, ...params: unknown[]): Promise<Row[]> {
    const cache = !this.t && q.cached ? this.db.cache : undefined;
    if (!cache) return this.read(q, params);
    return (await cache.statement(q, params, () => this.read(q, params))) as Row[];
  }

  private async read<Row>(q: Query<Row>, params: unknown[]): Promise<Row[]> {
    const result = await this.query(q, params);
    return (q.pluck ? result.rows.map((r: unknown[]) => r[0]) : result.rows) as Row[];
  }

  async run(q: Query, ...params: unknown[]): Promise<RunResult> {
    const result = await this.query(q, params);
    return { changes: result.rowCount ?? 0 };
  }

  private query(q: Query, params: unknown[]): Promise<pg.QueryResult> {
    if (!this.t) return this.db.query(this.client, q, params);
    this.t.check();
    if (q.writes) this.t.wrote = true;
    return this.t.after(this.db.query(this.client, q, params));
  }
}

/** `send()`, a throw included as a rejection: the COMMIT that follows must go out either way. */
function sendNow<T>(send: () => Promise<T>): Promise<T> {
  try {
    return send();
  } catch (err) {
    return Promise.reject(err);
  }
}

/** One transaction: its connection, its savepoints, and whether it is still open. */
class PgTransaction {
  active = true;
  savepoints = 0;
  /** A statement that may change rows ran: the commit needs a WAL flush. */
  wrote = false;
  /** Statements sent without waiting (BEGIN, SAVEPOINT) and not yet answered. */
  private ahead: Promise<void> | null = null;
  readonly statements: Sql;

  constructor(
    private readonly db: PostgresDatabase,
    private readonly client: pg.PoolClient,
  ) {
    this.statements = new PgStatements(db, client, this);
  }

  /**
   * Send `text` without waiting for its answer: what is sent next follows it on the connection, and waits
   * for it in after() (its failure fails them). `onFail` hears if it fails.
   */
  sendAhead(text: string, onFail?: (err: unknown) => void): void {
    const sent = this.send(text).then(
      () => undefined,
      (err) => {
        onFail?.(err);
        throw err;
      },
    );
    const ahead = this.ahead ? Promise.all([this.ahead, sent]).then(() => undefined) : sent;
    this.ahead = ahead;
    ahead.then(
      () => this.ahead === ahead && (this.ahead = null),
      () => undefined, // rethrown to whoever waits for it next
    );
  }

  /** The result of `sent`, sent after what went ahead: if that failed, its error (the statement then failed too). */
  async after<R>(sent: Promise<R>): Promise<R> {
    if (this.ahead) {
      sent.catch(() => undefined);
      await this.ahead;
    }
    return sent;
  }

  check(): void {
    if (!this.active) throw new Error('an index object bound to a transaction was used after the transaction ended');
  }

  async exec(text: string): Promise<void> {
    await this.after(this.send(text));
  }

  /**
   * COMMIT. Durable before it is acknowledged, as synchronous_commit on would make it, but flushed after
   * COMMIT has released the lock, so concurrent writers share one WAL flush (group commit) instead of one
   * each, in turn. One round trip: the flush runs in a transaction of its own after the COMMIT (only if
   * something was written). A COMMIT that fails ends the transaction all the same (and skips the flush).
   * PostgreSQL answers a COMMIT of a transaction in which a statement failed (its error caught by the
   * caller) with ROLLBACK, not an error: that is no success.
   */
  async commit(): Promise<void> {
    const results = await this.after(this.send(this.wrote ? `COMMIT; ${FLUSH}` : 'COMMIT'));
    if ((Array.isArray(results) ? results[0] : results)?.command === 'ROLLBACK') {
      throw new Error('the index transaction was rolled back: one of its statements had failed');
    }
  }

  private async send(text: string): Promise<pg.QueryResult | pg.QueryResult[]> {
    try {
      return (await this.client.query(text)) as pg.QueryResult | pg.QueryResult[];
    } catch (err) {
      throw this.db.translate(err);
    }
  }
}
