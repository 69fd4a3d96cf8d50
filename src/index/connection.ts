import type { Statement } from 'better-sqlite3';
import type { Db } from './db';
import { makeTx, type IndexDatabase, type Tx } from './database';
import { ReadCache } from './read-cache';
import type { Query, RunResult, Sql } from './sql';
import { SOLE_PROCESS_UPLOADS } from './upload-locks';

// The SQLite index database: one better-sqlite3 connection shared by every index object, with transactions
// whose work is asynchronous (docs/development.md, "Index interface"). A transaction holds the connection
// from BEGIN IMMEDIATE to COMMIT: statements from outside it wait for it to end (idle()), or they would run
// inside it between its awaits, seeing and joining its uncommitted writes.

/** How statements reach the connection: undefined when they may run now. */
export interface Gate {
  idle(): Promise<void> | undefined;
}

/** The connection behind `db`, shared by every index object opened on it. */
export function connectionOf(db: Db): SqliteConnection {
  let conn = connections.get(db);
  if (!conn) connections.set(db, (conn = new SqliteConnection(db)));
  return conn;
}
const connections = new WeakMap<Db, SqliteConnection>();

/** An index object's database: the SQLite connection a raw handle stands for, or the database itself. */
export function databaseOf(db: Db | IndexDatabase): IndexDatabase {
  return 'dialect' in db ? db : connectionOf(db);
}

/** Runs statements on the connection once its gate lets them. */
class SqliteStatements implements Sql {
  constructor(
    private readonly conn: SqliteConnection,
    private readonly gate: Gate,
  ) {}

  async get<Row>(q: Query<Row>, ...params: unknown[]): Promise<Row | undefined> {
    if (q.cached && this.gate === this.conn) return (await this.all(q, ...params))[0];
    return this.when(() => this.conn.wrote(q, this.conn.statement(q).get(...params) as Row | undefined));
  }

  all<Row>(q: Query<Row>, ...params: unknown[]): Promise<Row[]> {
    const read = () => this.when(() => this.conn.wrote(q, this.conn.statement(q).all(...params) as Row[]));
    // Outside a transaction only: one sees its own writes.
    if (!q.cached || this.gate !== this.conn) return read();
    return this.conn.cache.statement(q, params, read) as Promise<Row[]>;
  }

  run(q: Query, ...params: unknown[]): Promise<RunResult> {
    return this.when(() => this.conn.wrote(q, { changes: this.conn.statement(q).run(...params).changes }));
  }

  /** Run `work` at once (no extra tick) unless another transaction is open; a throw becomes a rejection. */
  private when<T>(work: () => T): Promise<T> {
    try {
      const wait = this.gate.idle();
      if (wait) return wait.then(() => this.when(work)); // checked again: another transaction may have begun since
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

export class SqliteConnection implements IndexDatabase, Gate {
  readonly dialect = 'sqlite';
  /** Statements outside any transaction. */
  private readonly unbound = new SqliteStatements(this, this);
  /** Resolves when the open transaction ends; null while none is open. */
  private open: Promise<void> | null = null;
  private readonly statements = new Map<string, Statement>();
  private readonly gates = new WeakMap<Tx, TxGate>();
  private readonly s;
  /**
   * Where cached reads (Query.cached) are answered from, outside transactions. This connection's own writes
   * empty it as they happen; another connection's commits (an operator command, another process) change
   * SQLite's data_version, which every cached read looks at first.
   */
  readonly cache = new ReadCache(() => this.noWriterElsewhere());
  /** One process serves a SQLite index: the BlobStore's own guard is all there is. */
  readonly uploadLocks = SOLE_PROCESS_UPLOADS;
  private dataVersion: unknown;

  onTransaction?: (seconds: number) => void;

  constructor(readonly db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.s = { begin: p('BEGIN IMMEDIATE'), commit: p('COMMIT'), rollback: p('ROLLBACK'), dataVersion: p('PRAGMA data_version').pluck() };
  }

  /** `result`, after forgetting what memory holds if `q` may have changed rows. */
  wrote<R>(q: Query, result: R): R {
    if (q.writes) this.cache.changed(null);
    return result;
  }

  /** Always true: if another connection committed since the last look, memory starts over first. */
  private noWriterElsewhere(): boolean {
    const version = this.s.dataVersion.get();
    if (version !== this.dataVersion) {
      this.dataVersion = version;
      this.cache.changed(null);
    }
    return true;
  }

  get<Row>(q: Query<Row>, ...params: unknown[]): Promise<Row | undefined> {
    return this.unbound.get(q, ...params);
  }

  all<Row>(q: Query<Row>, ...params: unknown[]): Promise<Row[]> {
    return this.unbound.all(q, ...params);
  }

  run(q: Query, ...params: unknown[]): Promise<RunResult> {
    return this.unbound.run(q, ...params);
  }

  /** `q` prepared on this connection (once). */
  statement(q: Query): Statement {
    let stmt = this.statements.get(q.id);
    if (!stmt) {
      stmt = this.db.prepare(q.sqlite);
      if (q.pluck) stmt.pluck();
      this.statements.set(q.id, stmt);
    }
    return stmt;
  }

  sqlOf(tx: Tx): Sql {
    return this.gateOf(tx).statements;
  }

  gateOf(tx: Tx): TxGate {
    const gate = this.gates.get(tx);
    if (!gate) throw new Error('not a transaction of this SQLite index');
    return gate;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  /** Outside a transaction: resolves once none is open (undefined at once when none is, the usual case). */
  idle(): Promise<void> | undefined {
    return this.open ? this.waitIdle() : undefined;
  }

  /** Run synchronous work on the raw handle outside any transaction (the refs journal, the WAL sync). */
  whenIdle<T>(work: () => T): Promise<T> {
    const wait = this.idle();
    if (wait) return wait.then(() => this.whenIdle(work)); // checked again: another transaction may have begun since
    try {
      this.cache.changed(null); // it may write anything
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async waitIdle(): Promise<void> {
    while (this.open) await this.open;
  }

  /**
   * BEGIN IMMEDIATE: the write lock from the start, so a CLI garbage collection on the same file cannot
   * split a check and its write either.
   */
  async transaction<T>(fn: (tx: Tx) => Promise<T>, within?: Tx): Promise<T> {
    const outer = within && this.gates.get(within);
    if (outer) return this.savepoint(fn, outer);
    const start = this.onTransaction && process.hrtime.bigint();
    while (this.open) await this.open;
    let end!: () => void;
    this.open = new Promise<void>((resolve) => (end = resolve));
    const gate = new TxGate(this);
    const tx = this.txFor(gate);
    try {
      this.s.begin.run();
      try {
        const result = await fn(tx);
        this.s.commit.run();
        this.cache.changed(null); // before anyone hears of the commit
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.s.rollback.run();
        throw err;
      }
    } finally {
      gate.active = false;
      this.open = null;
      end();
      if (start !== undefined) this.onTransaction!(Number(process.hrtime.bigint() - start) / 1e9);
    }
  }

  /** A nested transaction: its work is undone alone if it throws (the outer one goes on). */
  private async savepoint<T>(fn: (tx: Tx) => Promise<T>, outer: TxGate): Promise<T> {
    outer.check();
    const name = `sp${++outer.savepoints}`;
    this.db.exec(`SAVEPOINT ${name}`);
    try {
      const result = await fn(this.txFor(outer));
      this.db.exec(`RELEASE ${name}`);
      return result;
    } catch (err) {
      if (this.db.inTransaction) this.db.exec(`ROLLBACK TO ${name}; RELEASE ${name}`);
      throw err;
    } finally {
      outer.savepoints--;
    }
  }

  private txFor(gate: TxGate): Tx {
    const tx = makeTx();
    this.gates.set(tx, gate);
    return tx;
  }
}

/** A transaction's gate: open while it runs; an object bound to it and used after its end is a bug, not a wait. */
class TxGate implements Gate {
  active = true;
  /** Savepoints open in this transaction (they nest: one at a time per level). */
  savepoints = 0;
  readonly statements: Sql;

  constructor(conn: SqliteConnection) {
    this.statements = new SqliteStatements(conn, this);
  }

  idle(): undefined {
    this.check();
    return undefined;
  }

  check(): void {
    if (!this.active) throw new Error('an index object bound to a transaction was used after the transaction ended');
  }
}

