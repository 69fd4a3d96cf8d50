import type { Db } from './db';
import { SqliteIndexObject } from './connection';
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
     AND (@like IS NULL OR repo LIKE @like ESCAPE '\\') AND (@regex IS NULL OR repo REGEXP @regex) ${tail}`;

const DU_SELECT = `SELECT u.repo, u.bytes, u.blobs,
    (SELECT coalesce(sum(c.size), 0) FROM repo_charges c WHERE c.repo = u.repo
        AND EXISTS (SELECT 1 FROM repo_charges o WHERE o.digest = c.digest AND o.repo <> c.repo)) AS sharedBytes`;

export class UsageIndex extends SqliteIndexObject {
  private readonly s;

  constructor(db: Db) {
    super(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      charged: p('SELECT EXISTS (SELECT 1 FROM repo_charges WHERE repo = ? AND digest = ?)').pluck(),
      // One range of names (name-filter.ts): with and without an end, so that both bounds seek the index.
      sumRange: p(rangeSql('SELECT coalesce(sum(bytes), 0)', 'repo_usage', 'AND repo < @to')).pluck(),
      sumFrom: p(rangeSql('SELECT coalesce(sum(bytes), 0)', 'repo_usage', '')).pluck(),
      duRange: p(rangeSql(DU_SELECT, 'repo_usage u', 'AND repo < @to', 'ORDER BY repo')),
      duFrom: p(rangeSql(DU_SELECT, 'repo_usage u', '', 'ORDER BY repo')),
    };
  }

  /** Whether `repo` is already charged for `digest` (a new reference to it adds no bytes). */
  isCharged(repo: string, digest: Digest): Promise<boolean> {
    return this.run(() => this.s.charged.get(repo, digest) === 1);
  }

  /** Bytes charged to the repositories `patterns` match, together. Quotas read it inside a push's transaction. */
  bytesUsed(patterns: readonly NamePattern[]): Promise<number> {
    return this.run(() => {
      let total = 0;
      for (const r of nameRanges(patterns)) {
        const params = { from: r.from, regex: r.regex, like: r.like };
        total += (r.to === null ? this.s.sumFrom.get(params) : this.s.sumRange.get({ ...params, to: r.to })) as number;
      }
      return total;
    });
  }

  /** Usage of each repository `patterns` match that is charged for anything, in name order. */
  perRepository(patterns: readonly NamePattern[] = ALL_NAMES): Promise<RepoUsage[]> {
    return this.run(() => {
      const out: RepoUsage[] = [];
      for (const r of nameRanges(patterns)) {
        const params = { from: r.from, regex: r.regex, like: r.like };
        const rows = (r.to === null ? this.s.duFrom.all(params) : this.s.duRange.all({ ...params, to: r.to })) as Omit<RepoUsage, 'uniqueBytes'>[];
        for (const row of rows) out.push({ ...row, uniqueBytes: row.bytes - row.sharedBytes });
      }
      return out;
    });
  }
}
