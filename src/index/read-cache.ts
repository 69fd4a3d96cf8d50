// Reads of the index answered from memory (sql.ts, Query.cached): a manifest GET or a tag listing then
// needs no statement. What keeps them right:
// - a change made elsewhere empties what it may have changed: on PostgreSQL another replica's change reaches
//   every replica through the change feed (postgres/change-feed.ts), which drops that repository's entries
//   and proves it is current with a ping of its own (while it cannot, every read goes to PostgreSQL); on
//   SQLite another connection's commit (an operator command) changes the file's data_version, which every
//   cached read looks at first (connection.ts);
// - this process's own writes empty the cache when they commit, before they are acknowledged, so a change
//   is seen at once by the process that made it;
// - a read that was under way while anything changed is answered but not kept (it may predate the change).

import type { Query } from './sql';

/** Entries are dropped, all of them, once their estimated size passes this many bytes. */
const DEFAULT_BUDGET = 32 * 1024 * 1024;

export class ReadCache {
  /** Bumped by every change: a read started before one is not kept. */
  private generation = 0;
  private readonly repos = new Map<string, Map<string, { rows: readonly unknown[]; size: number }>>();
  private bytes = 0;
  /** Reads answered from memory, read and kept (or not, if something changed), and sent past it (not fresh). */
  readonly counts = { hit: 0, miss: 0, bypass: 0 };

  constructor(
    /** Whether memory may be used at all (it may report a change first, through changed()). */
    private readonly isFresh: () => boolean,
    private readonly budget = DEFAULT_BUDGET,
  ) {}

  /** The rows of cached statement `q` with `params`: kept ones, or `read`'s (kept unless something changed meanwhile). */
  statement(q: Query, params: unknown[], read: () => Promise<unknown[]>): Promise<readonly unknown[]> {
    return this.rows(repositoryOf(q, params), `${q.id}\0${JSON.stringify(params)}`, read);
  }

  /** The rows of the statement `key` of repository `repo`: kept ones, or `read`'s (kept unless something changed meanwhile). */
  async rows(repo: string, key: string, read: () => Promise<unknown[]>): Promise<readonly unknown[]> {
    if (!this.isFresh()) {
      this.counts.bypass++;
      return read();
    }
    const kept = this.repos.get(repo)?.get(key);
    if (kept) {
      this.counts.hit++;
      return kept.rows;
    }
    this.counts.miss++;
    const generation = this.generation;
    const rows = await read();
    // isFresh() first: on SQLite it is what notices another connection's commit (and bumps the generation).
    if (this.isFresh() && generation === this.generation) this.keep(repo, key, rows);
    return rows;
  }

  /** Rows of `repo` changed (null: of any repository, or unknown ones). */
  changed(repo: string | null): void {
    this.generation++;
    if (repo === null) {
      this.repos.clear();
      this.bytes = 0;
      return;
    }
    const entries = this.repos.get(repo);
    if (!entries) return;
    this.repos.delete(repo);
    for (const { size } of entries.values()) this.bytes -= size;
  }

  private keep(repo: string, key: string, rows: unknown[]): void {
    const size = sizeOf(repo, key, rows);
    if (size > this.budget) return;
    if (this.bytes + size > this.budget) this.changed(null);
    for (const row of rows) Object.freeze(row); // shared by every later reader
    let entries = this.repos.get(repo);
    if (!entries) this.repos.set(repo, (entries = new Map()));
    this.bytes += size - (entries.get(key)?.size ?? 0); // two misses of one key may both keep it
    entries.set(key, { rows: Object.freeze(rows), size });
  }
}

// Estimated: strings count two bytes a character, as V8 may hold them.
function sizeOf(repo: string, key: string, rows: readonly unknown[]): number {
  return 2 * (repo.length + key.length + JSON.stringify(rows).length) + 64;
}

/** The repository a cached statement reads: its first parameter, or its `@repo`. */
function repositoryOf(q: Query, params: unknown[]): string {
  const first = params[0];
  const repo = typeof first === 'string' ? first : (first as { repo?: unknown } | undefined)?.repo;
  if (typeof repo !== 'string') throw new Error(`cached statement ${q.id} names no repository in its first parameter`);
  return repo;
}
