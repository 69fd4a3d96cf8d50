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
  /** It may change rows (not a plain read): on PostgreSQL it runs under a lock (see `lock`). */
  readonly writes: boolean;
  /**
   * The lock a write run outside a transaction takes on PostgreSQL (SQLite has one writer and ignores it):
   * - 'write' (the default): the write lock, in a transaction of its own, as every write transaction;
   * - 'none': none, it commits on its own: it checks nothing and writes only a row no other transaction
   *   can depend on yet (a new row under a fresh random key);
   * - 'shared': the write lock, shared: it writes only its own upload's row, which only garbage collection's
   *   decisions (write transactions) read; such writes do not wait for each other.
   */
  readonly lock: WriteLock;
  /**
   * It may be answered from memory (read-cache.ts) outside a transaction. Only for a read of one
   * repository's rows (its first parameter, or `@repo`) in tables whose changes PostgreSQL announces
   * (postgres/schema-v3.ts, ANNOUNCED_TABLES).
   */
  readonly cached: boolean;
}

export type WriteLock = 'write' | 'none' | 'shared';

let nextId = 0;

/** Every statement defined with `cached` (test/index/postgres-read-cache checks the tables each reads). */
export const CACHED_QUERIES: Query[] = [];

/**
 * A statement of the index. `postgres`: its PostgreSQL text where it differs. `pluck`: rows are their first
 * column's value. `lock`: see Query. Define statements once (module or constructor level), not per call.
 */
export function sql<Row = unknown>(
  text: string,
  opts: { postgres?: string; pluck?: boolean; lock?: WriteLock; cached?: boolean } = {},
): Query<Row> {
  const postgres = (opts.postgres ?? text).replace(/\bREGEXP\b/g, '~');
  const writes = !isRead(text);
  if (opts.cached && writes) throw new Error('only a read can be cached');
  if (opts.cached && !(namesRepositoryFirst(text) && namesRepositoryFirst(postgres))) {
    throw new Error(`a cached statement's first parameter (or @repo) must be its repository: ${text}`);
  }
  const q = { sqlite: text, postgres, pluck: opts.pluck ?? false, id: `q${++nextId}`, writes, lock: opts.lock ?? 'write', cached: opts.cached ?? false };
  if (q.cached) CACHED_QUERIES.push(q);
  return q;
}

/** `repo = @repo`, or `repo = ?` as its first `?`: what memory is emptied by is the repository (read-cache.ts). */
function namesRepositoryFirst(text: string): boolean {
  if (text.includes('@')) return /\brepo\s*=\s*@repo\b/.test(text);
  const m = /\brepo\s*=\s*\?/.exec(text);
  return m !== null && m.index + m[0].length - 1 === text.indexOf('?');
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
