import type { Db } from './db';
import { SqliteIndexObject } from './connection';
import type { Digest } from '../storage/digest';

// The pull-through cache's own state (migration 9): when each proxied tag was last confirmed upstream.
// Tags, manifests and blob links themselves are the registry's (v2-index.ts), like pushed ones.

export interface TagCheck {
  digest: Digest;
  /** ms since the epoch. */
  checkedAt: number;
}

export class ProxyIndex extends SqliteIndexObject {
  private readonly s;

  constructor(db: Db) {
    super(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      get: p('SELECT digest, checked_at AS checkedAt FROM proxy_tags WHERE repo = ? AND tag = ?'),
      set: p(
        `INSERT INTO proxy_tags (repo, tag, digest, checked_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, checked_at = excluded.checked_at`,
      ),
    };
  }

  /** The last confirmation of `tag` upstream, if any. */
  lastCheck(repo: string, tag: string): Promise<TagCheck | undefined> {
    return this.run(() => this.s.get.get(repo, tag) as TagCheck | undefined);
  }

  /** Record that the upstream named `digest` for `tag` just now. */
  checked(repo: string, tag: string, digest: Digest, at = Date.now()): Promise<void> {
    return this.run(() => void this.s.set.run(repo, tag, digest, at));
  }
}
