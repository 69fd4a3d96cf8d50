import type { Db } from './db';

// One better-sqlite3 connection shared by every index object, with transactions whose work is asynchronous
// (the interface a PostgreSQL index implements too; docs/development.md, "Index interface"). A transaction
// holds the connection from BEGIN IMMEDIATE to COMMIT: statements from outside it wait for it to end
// (idle()), or they would run inside it between its awaits, seeing and joining its uncommitted writes.

/** A transaction's view of the index: `tx(index)` is that index object bound to the transaction. */
export interface Tx {
  <T extends Transactional>(index: T): T;
}

/** An index object that can be bound to a transaction; its methods then run inside it, without waiting. */
export interface Transactional {
  /** Used by Tx only: this object with its statements running in `tx`. */
  boundTo(tx: Tx): this;
}

/** How an index object reaches the connection: undefined when it may run its statements now. */
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

/** The gate of the transaction `tx` was made for (undefined: not a SQLite transaction of this process). */
const gates = new WeakMap<Tx, TxGate>();

export class SqliteConnection implements Gate {
  /** Resolves when the open transaction ends; null while none is open. */
  private open: Promise<void> | null = null;
  private savepoints = 0;
  private readonly s;

  /** Told how long each outermost transaction took, in seconds, waiting for its turn included (metrics). */
  onTransaction?: (seconds: number) => void;

  constructor(readonly db: Db) {
    const p = (sql: string) => db.prepare(sql);
    this.s = { begin: p('BEGIN IMMEDIATE'), commit: p('COMMIT'), rollback: p('ROLLBACK') };
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
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private async waitIdle(): Promise<void> {
    while (this.open) await this.open;
  }

  /**
   * Run `fn` in one transaction that holds the write lock from its start (BEGIN IMMEDIATE): a check and the
   * write that depends on it cannot be split by another request's write, nor by another process's (a garbage
   * collection run from the CLI). `within`: the transaction this one runs in (a savepoint of it).
   */
  async transaction<T>(fn: (tx: Tx) => Promise<T>, within?: Tx): Promise<T> {
    const outer = within && gates.get(within);
    if (outer) return this.savepoint(fn, outer);
    const start = this.onTransaction && process.hrtime.bigint();
    while (this.open) await this.open;
    let end!: () => void;
    this.open = new Promise<void>((resolve) => (end = resolve));
    const gate = new TxGate();
    const tx = makeTx(gate);
    try {
      this.s.begin.run();
      try {
        const result = await fn(tx);
        this.s.commit.run();
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
    const name = `sp${++this.savepoints}`;
    this.db.exec(`SAVEPOINT ${name}`);
    try {
      const result = await fn(makeTx(outer));
      this.db.exec(`RELEASE ${name}`);
      return result;
    } catch (err) {
      if (this.db.inTransaction) this.db.exec(`ROLLBACK TO ${name}; RELEASE ${name}`);
      throw err;
    } finally {
      this.savepoints--;
    }
  }
}

/** A transaction's gate: open while it runs; an object bound to it and used after its end is a bug, not a wait. */
class TxGate implements Gate {
  active = true;

  idle(): undefined {
    this.check();
    return undefined;
  }

  check(): void {
    if (!this.active) throw new Error('an index object bound to a transaction was used after the transaction ended');
  }
}

function makeTx(gate: TxGate): Tx {
  const tx: Tx = (index) => index.boundTo(tx);
  gates.set(tx, gate);
  return tx;
}

/** The gate an index object bound to `tx` uses. */
export function gateOf(tx: Tx): Gate {
  const gate = gates.get(tx);
  if (!gate) throw new Error('not a transaction of this SQLite index');
  return gate;
}

/**
 * The base of the SQLite index objects: `ready()` before running statements (undefined: at once), and
 * `boundTo(tx)` for the same object inside a transaction.
 */
export abstract class SqliteIndexObject implements Transactional {
  protected gate: Gate;
  /** The transaction this object is bound to, if any. */
  protected tx?: Tx;
  protected readonly conn: SqliteConnection;

  constructor(db: Db) {
    this.conn = connectionOf(db);
    this.gate = this.conn;
  }

  boundTo(tx: Tx): this {
    return Object.assign(Object.create(this) as this, { gate: gateOf(tx), tx });
  }

  /** `index` in the transaction this object is bound to, if any (itself otherwise). */
  protected peer<T extends Transactional>(index: T): T {
    return this.tx ? this.tx(index) : index;
  }

  /** Run `fn` in a transaction: a savepoint of the one this object is bound to, if any. */
  protected transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.conn.transaction(fn, this.tx);
  }

  /**
   * Run synchronous statements once the connection is ours: at once (no extra tick) unless another
   * transaction is open; a throw becomes a rejection.
   */
  protected run<T>(work: () => T): Promise<T> {
    try {
      const wait = this.gate.idle();
      if (wait) return wait.then(() => this.run(work)); // checked again: another transaction may have begun since
      return Promise.resolve(work());
    } catch (err) {
      return Promise.reject(err);
    }
  }
}
