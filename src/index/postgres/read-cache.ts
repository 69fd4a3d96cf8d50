// Reads of the PostgreSQL index answered from this replica's memory: a manifest GET then needs no round
// trip (sql.ts, Query.cached). What keeps them right:
// - another replica's change reaches every replica through the change feed (change-feed.ts), which drops that
//   repository's entries; the feed proves it is current with a ping of its own, and while it cannot
//   (disconnected, or PostgreSQL slow to answer), every read goes to PostgreSQL;
// - this replica's own write transactions empty the cache when they commit, before they are acknowledged, so
//   a change is seen at once on the replica that made it;
// - a read that was under way while anything changed is answered but not kept (it may predate the change).

/** Entries are dropped, all of them, once their estimated size passes this many bytes. */
const DEFAULT_BUDGET = 32 * 1024 * 1024;

export class ReadCache {
  /** Bumped by every change: a read started before one is not kept. */
  private generation = 0;
  private readonly repos = new Map<string, Map<string, { rows: readonly unknown[]; size: number }>>();
  private bytes = 0;
  hits = 0;
  misses = 0;

  constructor(
    /** Whether the change feed is current enough to answer from memory at all. */
    private readonly isFresh: () => boolean,
    private readonly budget = DEFAULT_BUDGET,
  ) {}

  /** The rows of the statement `key` of repository `repo`: kept ones, or `read`'s (kept unless something changed meanwhile). */
  async rows(repo: string, key: string, read: () => Promise<unknown[]>): Promise<readonly unknown[]> {
    if (!this.isFresh()) return read();
    const kept = this.repos.get(repo)?.get(key);
    if (kept) {
      this.hits++;
      return kept.rows;
    }
    this.misses++;
    const generation = this.generation;
    const rows = await read();
    if (generation === this.generation && this.isFresh()) this.keep(repo, key, rows);
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
    for (const row of rows) Object.freeze(row); // shared by every later reader
    const size = sizeOf(repo, key, rows);
    if (this.bytes + size > this.budget) this.changed(null);
    if (size > this.budget) return;
    let entries = this.repos.get(repo);
    if (!entries) this.repos.set(repo, (entries = new Map()));
    entries.set(key, { rows: Object.freeze(rows), size });
    this.bytes += size;
  }
}

// Estimated: strings count two bytes a character, as V8 may hold them.
function sizeOf(repo: string, key: string, rows: readonly unknown[]): number {
  return 2 * (repo.length + key.length + JSON.stringify(rows).length) + 64;
}
