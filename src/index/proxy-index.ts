import type { Db } from './db';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase } from './database';
import { sql } from './sql';
import type { Digest } from '../storage/digest';

// The pull-through cache's own state (migration 9): when each proxied tag was last confirmed upstream.
// Tags, manifests and blob links themselves are the registry's (v2-index.ts), like pushed ones.

export interface TagCheck {
  digest: Digest;
  /** ms since the epoch. */
  checkedAt: number;
}

const Q = {
  get: sql<TagCheck>('SELECT digest, checked_at AS "checkedAt" FROM proxy_tags WHERE repo = ? AND tag = ?'),
  set: sql(
    `INSERT INTO proxy_tags (repo, tag, digest, checked_at) VALUES (?, ?, ?, ?)
     ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, checked_at = excluded.checked_at`,
  ),
};

export class ProxyIndex extends IndexObject {
  constructor(db: Db | IndexDatabase) {
    super(databaseOf(db));
  }

  /** The last confirmation of `tag` upstream, if any. */
  lastCheck(repo: string, tag: string): Promise<TagCheck | undefined> {
    return this.sql.get(Q.get, repo, tag);
  }

  /** Record that the upstream named `digest` for `tag` just now. */
  async checked(repo: string, tag: string, digest: Digest, at = Date.now()): Promise<void> {
    await this.sql.run(Q.set, repo, tag, digest, at);
  }
}
