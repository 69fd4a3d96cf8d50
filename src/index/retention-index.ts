import type { Db } from './db';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase } from './database';
import { sql } from './sql';
import { inJsonList, jsonRows, sqlWith } from './json-list';
import { keptManifests } from './reachable';
import type { Digest } from '../storage/digest';
import type { Pull, PullSink } from '../retention/pull-recorder';
import type { TagState } from '../retention/policy';

// What retention asks of the index: each repository's tags with push and pull times, and the removal of
// tags with the manifests only they kept reachable, in one transaction per repository. Statements are
// sql.ts's: the same methods run on SQLite and PostgreSQL.

export interface TagToRemove {
  tag: string;
  digest: Digest;
  /** The push time the decision saw: a tag pushed again since then is left alone. */
  pushedAt: number;
}

export interface RemovalResult {
  tags: TagToRemove[];
  /** Manifests no tag reaches any more (nor a kept index or subject), deleted with the tags. */
  manifests: Digest[];
  /** Bytes of blobs that nothing refers to any more: the next garbage collection frees them. */
  bytes: number;
}

/** Thrown inside a transaction to roll a dry run back after measuring it. */
class DryRun extends Error {
  constructor(readonly result: RemovalResult) {
    super('dry run');
  }
}

const byDigests = inJsonList('digest', 'digests');
const withList = <Row = unknown>(text: (list: string) => string, opts: { pluck?: boolean } = {}) => sqlWith<Row>(byDigests, text, opts);

// Manifests of a repository a tag reaches: tagged, children of reached indexes, referrers of reached manifests.
const reachable = keptManifests('SELECT digest FROM tags WHERE repo = @repo');
const REACHABLE_TAIL = 'SELECT digest FROM manifests WHERE repo = @repo AND digest IN (SELECT digest FROM kept)';

// A batch of pulls (a JSON array of {repo, digest, tag?, at}) as rows, the latest pull per manifest or tag.
// `->>` reads a member on both (SQLite 3.38+ takes 'repo' as '$.repo'); only the row source differs.
const pullRows = (from: string, keys: string) =>
  `SELECT ${keys}, max(CAST(j.value ->> 'at' AS BIGINT)) AS at FROM ${from}`;
const PULLS = jsonRows('pulls', true);
const PULLED_MANIFESTS = (from: string) =>
  `${pullRows(from, "j.value ->> 'repo' AS repo, j.value ->> 'digest' AS digest")} GROUP BY 1, 2`;
const PULLED_TAGS = (from: string) =>
  `${pullRows(from, "j.value ->> 'repo' AS repo, j.value ->> 'tag' AS tag, j.value ->> 'digest' AS digest")}
    WHERE j.value ->> 'tag' IS NOT NULL GROUP BY 1, 2, 3`;
// A pull only moves pulled_at forward (an older batch written late changes nothing).
const pullManifests = (from: string) =>
  `UPDATE manifests SET pulled_at = p.at FROM (${PULLED_MANIFESTS(from)}) p
    WHERE manifests.repo = p.repo AND manifests.digest = p.digest AND coalesce(manifests.pulled_at, 0) < p.at`;
const pullTags = (from: string) =>
  `UPDATE tags SET pulled_at = p.at FROM (${PULLED_TAGS(from)}) p
    WHERE tags.repo = p.repo AND tags.tag = p.tag AND tags.digest = p.digest AND coalesce(tags.pulled_at, 0) < p.at`;

// The later of two times: SQLite's scalar max(), PostgreSQL's greatest().
const GREATEST = { sqlite: 'max', postgres: 'greatest' };
const TAGS = (greatest: string) =>
  `SELECT t.tag, t.digest, t.updated_at AS "pushedAt",
          nullif(${greatest}(coalesce(t.pulled_at, 0), coalesce(m.pulled_at, 0)), 0) AS "pulledAt"
     FROM tags t LEFT JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
    WHERE t.repo = ?`;

const Q = {
  taggedRepositories: sql<string>('SELECT DISTINCT repo FROM tags WHERE repo > ? ORDER BY repo LIMIT ?', { pluck: true }),
  tags: sqlWith<TagState>(GREATEST, TAGS),
  reachable: sqlWith<Digest>(reachable, (kept) => `${kept} ${REACHABLE_TAIL}`, { pluck: true }),
  deleteTag: sql('DELETE FROM tags WHERE repo = ? AND tag = ? AND digest = ? AND updated_at = ?'),
  // The manifests in @digests of @repo: their children, then the manifests with their references and links.
  children: withList<Digest>((l) => `SELECT DISTINCT child FROM manifest_refs WHERE repo = @repo AND ${l}`, { pluck: true }),
  deleteManifests: withList((l) => `DELETE FROM manifests WHERE repo = @repo AND ${l}`),
  deleteRefs: withList((l) => `DELETE FROM manifest_refs WHERE repo = @repo AND ${l}`),
  unlink: withList((l) => `DELETE FROM repo_blobs WHERE repo = @repo AND ${l}`),
  // Bytes of the blobs in @digests that no manifest anywhere is or names, and no v1 image uses: only links
  // (which expire) hold them.
  orphanBytes: withList<number>(
    (l) => `SELECT coalesce(sum(size), 0) FROM blobs b WHERE ${l}
       AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
       AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child = b.digest)
       AND NOT EXISTS (SELECT 1 FROM v1_images i WHERE i.json_digest = b.digest OR i.layer_digest = b.digest)`,
    { pluck: true },
  ),
  pullManifests: sqlWith(PULLS, pullManifests),
  pullTags: sqlWith(PULLS, pullTags),
};

export class RetentionIndex extends IndexObject implements PullSink {
  constructor(db: Db | IndexDatabase) {
    super(databaseOf(db));
  }

  /** Repositories with tags after `after`, at most `limit`, in byte order. */
  taggedRepositories(after: string, limit: number): Promise<string[]> {
    return this.sql.all(Q.taggedRepositories, after, limit);
  }

  tags(repo: string): Promise<TagState[]> {
    return this.sql.all(Q.tags, repo);
  }

  /**
   * Remove these tags of `repo` (each only if still where and as recent as decided) and the manifests that no
   * tag reaches afterwards but did before, in one transaction. `dryRun`: the same work, rolled back.
   */
  async removeTags(repo: string, tags: readonly TagToRemove[], dryRun: boolean): Promise<RemovalResult> {
    try {
      return await this.transaction(async (tx) => {
        const self = tx(this);
        const before = new Set(await self.sql.all(Q.reachable, { repo }));
        const removed: TagToRemove[] = [];
        for (const t of tags) if ((await self.sql.run(Q.deleteTag, repo, t.tag, t.digest, t.pushedAt)).changes === 1) removed.push(t);
        const after = new Set(await self.sql.all(Q.reachable, { repo }));
        const manifests = [...before].filter((d) => !after.has(d));
        let bytes = 0;
        if (manifests.length > 0) {
          const params = { repo, digests: JSON.stringify(manifests) };
          const candidates = new Set<Digest>([...manifests, ...(await self.sql.all(Q.children, params))]);
          for (const q of [Q.deleteManifests, Q.deleteRefs, Q.unlink]) await self.sql.run(q, params);
          bytes = (await self.sql.get(Q.orphanBytes, { digests: JSON.stringify([...candidates]) }))!;
        }
        const result = { tags: removed, manifests, bytes };
        if (dryRun) throw new DryRun(result);
        return result;
      });
    } catch (err) {
      if (err instanceof DryRun) return err.result;
      throw err;
    }
  }

  /** Write a batch of pulls: each manifest's and tag's latest, where it is newer than the one recorded. */
  async recordPulls(pulls: readonly Pull[]): Promise<void> {
    if (pulls.length === 0) return;
    const params = { pulls: JSON.stringify(pulls) };
    await this.transaction(async (tx) => {
      const self = tx(this);
      await self.sql.run(Q.pullManifests, params);
      await self.sql.run(Q.pullTags, params);
    });
  }
}
