// The statements of the index, written once for both backends. Parameters are `?` (in order) or `@name`
// (from one object), as better-sqlite3 takes them; the PostgreSQL backend numbers them ($n, postgres/sql.ts)
// and reads `a REGEXP b` as `a ~ b`. Where the two dialects truly differ, a statement carries its
// PostgreSQL text too. Rows come back alike from both: integers as numbers, booleans as 1 / 0.

export interface Query<Row = unknown> {
  /** The statement as SQLite runs it. */
  readonly sqlite: string;
  /** The statement as PostgreSQL runs it (parameters still `?` / `@name`). */
  readonly postgres: string;
  /** Rows are the value of their first column (better-sqlite3's pluck()). */
  readonly pluck: boolean;
  /** Unique per statement: the name it is prepared under on each PostgreSQL connection. */
  readonly id: string;
  /** It may change rows (not a plain read): on PostgreSQL it runs under the write lock... */
  readonly writes: boolean;
  /**
   * ...unless it checks nothing and writes only a row no other transaction can depend on yet (a new row under
   * a fresh random key): run outside a transaction, it then commits on its own, without waiting for the lock.
   */
  readonly lockFree: boolean;
}

let nextId = 0;

/**
 * A statement of the index. `postgres`: its PostgreSQL text where it differs. `pluck`: rows are their first
 * column's value. `lockFree`: see Query. Define statements once (module or constructor level), not per call.
 */
export function sql<Row = unknown>(text: string, opts: { postgres?: string; pluck?: boolean; lockFree?: boolean } = {}): Query<Row> {
  const postgres = (opts.postgres ?? text).replace(/\bREGEXP\b/g, '~');
  return { sqlite: text, postgres, pluck: opts.pluck ?? false, id: `q${++nextId}`, writes: !isRead(text), lockFree: opts.lockFree ?? false };
}

/** A statement that only reads: SELECT, or WITH whose body neither inserts, updates nor deletes. */
function isRead(text: string): boolean {
  const t = text.trimStart();
  if (/^SELECT\b/i.test(t)) return true;
  return /^WITH\b/i.test(t) && !/\b(INSERT|UPDATE|DELETE)\b/i.test(t);
}

/** What a change did. */
export interface RunResult {
  /** Rows inserted, updated or deleted. */
  changes: number;
}

/** Runs statements: the database itself, or one transaction of it. */
export interface Sql {
  get<Row>(q: Query<Row>, ...params: unknown[]): Promise<Row | undefined>;
  all<Row>(q: Query<Row>, ...params: unknown[]): Promise<Row[]>;
  run(q: Query, ...params: unknown[]): Promise<RunResult>;
}
