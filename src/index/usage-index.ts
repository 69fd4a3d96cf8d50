import type { Db } from './db';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase } from './database';
import { sql } from './sql';
import { ALL_NAMES, nameRanges, type NamePattern } from './name-filter';
import type { Digest } from '../storage/digest';

// Storage charged to repositories: each blob once per repository that links it or names it in a v1
// image (migration 5 keeps repo_charges and repo_usage up to date with triggers, so no path can forget).
// Quotas read it inside the transaction that would add a blob; `du` reads it for operators.

export interface RepoUsage {
  repo: string;
  /** Bytes charged to the repository, and how many blobs they are. */
  bytes: number;
  blobs: number;
  /** Of `bytes`: blobs some other repository is charged for too, and blobs only this one holds. */
  sharedBytes: number;
  uniqueBytes: number;
}

const rangeSql = (select: string, table: string, upperBound: string, tail = '') =>
  `${select} FROM ${table} WHERE repo >= @from ${upperBound}
     AND (CAST(@like AS TEXT) IS NULL OR repo LIKE @like ESCAPE '\\') AND (CAST(@regex AS TEXT) IS NULL OR repo REGEXP @regex) ${tail}`;

const DU_SELECT = `SELECT u.repo, u.bytes, u.blobs,
    (SELECT coalesce(sum(c.size), 0) FROM repo_charges c WHERE c.repo = u.repo
        AND EXISTS (SELECT 1 FROM repo_charges o WHERE o.digest = c.digest AND o.repo <> c.repo)) AS "sharedBytes"`;

const Q = {
  charged: sql<number>('SELECT EXISTS (SELECT 1 FROM repo_charges WHERE repo = ? AND digest = ?)', { pluck: true }),
  // One range of names (name-filter.ts): with and without an end, so that both bounds seek the index.
  sumRange: sql<number>(rangeSql('SELECT coalesce(sum(bytes), 0)', 'repo_usage', 'AND repo < @to'), { pluck: true }),
  sumFrom: sql<number>(rangeSql('SELECT coalesce(sum(bytes), 0)', 'repo_usage', ''), { pluck: true }),
  duRange: sql<Omit<RepoUsage, 'uniqueBytes'>>(rangeSql(DU_SELECT, 'repo_usage u', 'AND repo < @to', 'ORDER BY repo')),
  duFrom: sql<Omit<RepoUsage, 'uniqueBytes'>>(rangeSql(DU_SELECT, 'repo_usage u', '', 'ORDER BY repo')),
};

export class UsageIndex extends IndexObject {
  constructor(db: Db | IndexDatabase) {
    super(databaseOf(db));
  }

  /** Whether `repo` is already charged for `digest` (a new reference to it adds no bytes). */
  async isCharged(repo: string, digest: Digest): Promise<boolean> {
    return (await this.sql.get(Q.charged, repo, digest)) === 1;
  }

  /** Bytes charged to the repositories `patterns` match, together. Quotas read it inside a push's transaction. */
  async bytesUsed(patterns: readonly NamePattern[]): Promise<number> {
    let total = 0;
    for (const r of nameRanges(patterns)) {
      const params = { from: r.from, regex: r.regex, like: r.like };
      total += (await (r.to === null ? this.sql.get(Q.sumFrom, params) : this.sql.get(Q.sumRange, { ...params, to: r.to })))!;
    }
    return total;
  }

  /** Usage of each repository `patterns` match that is charged for anything, in name order. */
  async perRepository(patterns: readonly NamePattern[] = ALL_NAMES): Promise<RepoUsage[]> {
    const out: RepoUsage[] = [];
    for (const r of nameRanges(patterns)) {
      const params = { from: r.from, regex: r.regex, like: r.like };
      const rows = await (r.to === null ? this.sql.all(Q.duFrom, params) : this.sql.all(Q.duRange, { ...params, to: r.to }));
      for (const row of rows) out.push({ ...row, uniqueBytes: row.bytes - row.sharedBytes });
    }
    return out;
  }
}
