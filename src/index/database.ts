import type { Sql } from './sql';
import type { UploadLocks } from './upload-locks';

// The index database as the index objects see it: statements (sql.ts) and transactions, implemented by
// SQLite (connection.ts) and PostgreSQL (postgres/database.ts). Design: docs/development.md, "Index interface".

/** A transaction's view of the index: `tx(index)` is that index object bound to the transaction. */
export interface Tx {
  <T extends Transactional>(index: T): T;
}

/** An index object that can be bound to a transaction; its methods then run inside it. */
export interface Transactional {
  /** Used by Tx only: this object with its statements running in `tx`. */
  boundTo(tx: Tx): this;
}

export interface IndexDatabase extends Sql {
  readonly dialect: 'sqlite' | 'postgres';
  /**
   * Run `fn` in one transaction that holds the write lock from its start: a check and the write that
   * depends on it cannot be split by another write transaction, of this process or another (nor by a write
   * that sql.ts's Query.lock exempts: such writes check nothing another transaction wrote). `within`: the transaction
   * this one runs in (it becomes a savepoint of it).
   */
  transaction<T>(fn: (tx: Tx) => Promise<T>, within?: Tx): Promise<T>;
  /** The statements of transaction `tx` (made by this database). */
  sqlOf(tx: Tx): Sql;
  /** Where cached reads are answered from (read-cache.ts), if anywhere: its counts are metrics. */
  readonly cache?: { readonly counts: Readonly<Record<'hit' | 'miss' | 'bypass', number>> };
  /** Who may write to an upload, between processes sharing this index (upload-locks.ts). */
  readonly uploadLocks: UploadLocks;
  /** Told how long each outermost transaction took, in seconds, waiting for its turn included (metrics). */
  onTransaction?: (seconds: number) => void;
  close(): Promise<void>;
}

/** Make the Tx of a transaction: `tx(index)` binds `index` to it. */
export function makeTx(): Tx {
  const tx: Tx = (index) => index.boundTo(tx);
  return tx;
}

/**
 * The base of the index objects: `this.sql` runs statements (on the database, or in the transaction the
 * object is bound to), `boundTo(tx)` is the same object inside a transaction.
 */
export abstract class IndexObject implements Transactional {
  protected sql: Sql;
  /** The transaction this object is bound to, if any. */
  protected tx?: Tx;

  constructor(protected readonly database: IndexDatabase) {
    this.sql = database;
  }

  boundTo(tx: Tx): this {
    return Object.assign(Object.create(this) as this, { sql: this.database.sqlOf(tx), tx });
  }

  /** `index` in the transaction this object is bound to, if any (itself otherwise). */
  protected peer<T extends Transactional>(index: T): T {
    return this.tx ? this.tx(index) : index;
  }

  /** Run `fn` in a transaction: a savepoint of the one this object is bound to, if any. */
  protected transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.database.transaction(fn, this.tx);
  }

  /**
   * Run `fn` in the transaction this object is bound to, without a savepoint (for work no caller recovers
   * from: its failure fails that transaction), or else in a new one. A statement less per call.
   */
  protected atomically<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return this.tx ? fn(this.tx) : this.database.transaction(fn);
  }
}
