import type { Db } from './db';
import { SqliteIndexObject } from './connection';
import type { Digest } from '../storage/digest';
import type { Pull, PullSink } from '../retention/pull-recorder';
import type { TagState } from '../retention/policy';

// What retention asks of the index: each repository's tags with push and pull times, and the removal of
// tags with the manifests only they kept reachable, in one transaction per repository. Methods are
// asynchronous so that an index on a database server can implement them too.

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

export class RetentionIndex extends SqliteIndexObject implements PullSink {
  private readonly s;

  constructor(db: Db) {
    super(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      taggedRepositories: p('SELECT DISTINCT repo FROM tags WHERE repo > ? ORDER BY repo LIMIT ?').pluck(),
      tags: p(
        `SELECT t.tag, t.digest, t.updated_at AS pushedAt,
                nullif(max(coalesce(t.pulled_at, 0), coalesce(m.pulled_at, 0)), 0) AS pulledAt
           FROM tags t LEFT JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
          WHERE t.repo = ?`,
      ),
      // Manifests of a repository a tag reaches: tagged, children of reached indexes, referrers of reached manifests.
      reachable: p(
        `WITH RECURSIVE kept(digest) AS (
           SELECT digest FROM tags WHERE repo = @repo
           UNION SELECT r.child FROM manifest_refs r JOIN kept k ON r.repo = @repo AND r.digest = k.digest
           UNION SELECT m.digest FROM manifests m JOIN kept k ON m.repo = @repo AND m.subject = k.digest
         ) SELECT digest FROM manifests WHERE repo = @repo AND digest IN (SELECT digest FROM kept)`,
      ).pluck(),
      deleteTag: p('DELETE FROM tags WHERE repo = ? AND tag = ? AND digest = ? AND updated_at = ?'),
      children: p('SELECT child FROM manifest_refs WHERE repo = ? AND digest = ?').pluck(),
      deleteManifest: p('DELETE FROM manifests WHERE repo = ? AND digest = ?'),
      deleteRefs: p('DELETE FROM manifest_refs WHERE repo = ? AND digest = ?'),
      unlink: p('DELETE FROM repo_blobs WHERE repo = ? AND digest = ?'),
      // A blob no manifest anywhere is or names, and no v1 image uses: only links (which expire) hold it.
      orphanSize: p(
        `SELECT size FROM blobs b WHERE digest = ?
           AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.digest = b.digest)
           AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.child = b.digest)
           AND NOT EXISTS (SELECT 1 FROM v1_images i WHERE i.json_digest = b.digest OR i.layer_digest = b.digest)`,
      ).pluck(),
      pullManifest: p('UPDATE manifests SET pulled_at = @at WHERE repo = @repo AND digest = @digest AND coalesce(pulled_at, 0) < @at'),
      pullTag: p('UPDATE tags SET pulled_at = @at WHERE repo = @repo AND tag = @tag AND digest = @digest AND coalesce(pulled_at, 0) < @at'),
    };
  }

  /** Repositories with tags after `after`, at most `limit`, in byte order. */
  taggedRepositories(after: string, limit: number): Promise<string[]> {
    return this.run(() => this.s.taggedRepositories.all(after, limit) as string[]);
  }

  tags(repo: string): Promise<TagState[]> {
    return this.run(() => this.s.tags.all(repo) as TagState[]);
  }

  /**
   * Remove these tags of `repo` (each only if still where and as recent as decided) and the manifests that no
   * tag reaches afterwards but did before, in one transaction. `dryRun`: the same work, rolled back.
   */
  async removeTags(repo: string, tags: readonly TagToRemove[], dryRun: boolean): Promise<RemovalResult> {
    try {
      return await this.transaction(async () => {
        const before = new Set(this.s.reachable.all({ repo }) as Digest[]);
        const removed = tags.filter((t) => this.s.deleteTag.run(repo, t.tag, t.digest, t.pushedAt).changes === 1);
        const after = new Set(this.s.reachable.all({ repo }) as Digest[]);
        const manifests = [...before].filter((d) => !after.has(d));
        const candidates = new Set<Digest>(manifests);
        for (const digest of manifests) {
          for (const child of this.s.children.all(repo, digest) as Digest[]) candidates.add(child);
          this.s.deleteManifest.run(repo, digest);
          this.s.deleteRefs.run(repo, digest);
          this.s.unlink.run(repo, digest);
        }
        let bytes = 0;
        for (const d of candidates) bytes += (this.s.orphanSize.get(d) as number | undefined) ?? 0;
        const result = { tags: removed, manifests, bytes };
        if (dryRun) throw new DryRun(result);
        return result;
      });
    } catch (err) {
      if (err instanceof DryRun) return err.result;
      throw err;
    }
  }

  async recordPulls(pulls: readonly Pull[]): Promise<void> {
    return this.transaction(async () => {
      for (const p of pulls) {
        this.s.pullManifest.run({ repo: p.repo, digest: p.digest, at: p.at });
        if (p.tag !== undefined) this.s.pullTag.run({ repo: p.repo, digest: p.digest, tag: p.tag, at: p.at });
      }
    });
  }
}
