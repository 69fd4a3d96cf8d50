import type { Db } from './db';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase } from './database';
import { sql } from './sql';
import { inJsonList, sqlWith } from './json-list';
import { keptManifests } from './reachable';
import type { Digest } from '../storage/digest';

// What garbage collection asks of the index. Every step that removes something checks, in the same
// transaction, that nothing refers to it; pushes write their references in the transaction that checks
// the blob is there (BlobStore's onStored). Transactions serialize, so one of the two wins, never both.
// Statements are sql.ts's: the same methods run on SQLite and PostgreSQL.

/** A process holding the collection lock. */
export interface LockHolder {
  host: string;
  pid: number;
}

export interface DoomedBlob {
  digest: Digest;
  location: string;
  size: number;
}

/** Blobs looked at per transaction while sweeping: bounds how long one holds the write lock. */
const SCAN_WINDOW = 2000;

const byDigests = inJsonList('digest', 'digests');
const withList = (text: (list: string) => string) => sqlWith(byDigests, text);

// Manifests of a repository that no tag reaches: not tagged, no child of a kept index, no referrer (subject)
// of a kept manifest, and not younger than the cutoff (those keep what they reach, too).
const unreachable = keptManifests(
  'SELECT digest FROM tags WHERE repo = @repo UNION SELECT digest FROM manifests WHERE repo = @repo AND created_at >= @cutoff',
);
const UNREACHABLE_TAIL = 'SELECT digest FROM manifests WHERE repo = @repo AND digest NOT IN (SELECT digest FROM kept) LIMIT @limit';

const Q = {
  repositories: sql<string>('SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?', { pluck: true }),
  unreachableManifests: sqlWith<Digest>(unreachable, (kept) => `${kept} ${UNREACHABLE_TAIL}`, { pluck: true }),
  // The manifests in @digests of @repo, with their references, tags and links (as one per table).
  deleteManifests: withList((l) => `DELETE FROM manifests WHERE repo = @repo AND ${l}`),
  deleteRefs: withList((l) => `DELETE FROM manifest_refs WHERE repo = @repo AND ${l}`),
  deleteTags: withList((l) => `DELETE FROM tags WHERE repo = @repo AND ${l}`),
  unlink: withList((l) => `DELETE FROM repo_blobs WHERE repo = @repo AND ${l}`),
  // Links older than the cutoff that no manifest of the repository is or names.
  unusedLinks: sql(
    `DELETE FROM repo_blobs WHERE repo = @repo AND linked_at < @cutoff
       AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo = @repo AND m.digest = repo_blobs.digest)
       AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.repo = @repo AND r.child = repo_blobs.digest)`,
  ),
  // One window of blobs in digest order: its last digest, and those in it that nothing refers to.
  windowEnd: sql<string | null>('SELECT max(digest) FROM (SELECT digest FROM blobs WHERE digest > @after ORDER BY digest LIMIT @window) w', {
    pluck: true,
  }),
  unreferenced: sql<DoomedBlob>(
    `SELECT digest, location, size FROM blobs b
      WHERE digest > @after AND digest <= @upto AND created_at < @cutoff
        AND NOT EXISTS (SELECT 1 FROM repo_blobs l WHERE l.digest = b.digest)
        AND NOT EXISTS (SELECT 1 FROM v1_images i WHERE i.json_digest = b.digest)
        AND NOT EXISTS (SELECT 1 FROM v1_images i WHERE i.layer_digest = b.digest)
        AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.digest = b.digest)`,
  ),
  // The blobs in @digests move to gc_doomed (an entry already there stays as it is).
  doomBlobs: withList(
    (l) => `INSERT INTO gc_doomed (digest, location, size, doomed_at) SELECT digest, location, size, @now FROM blobs WHERE ${l} ON CONFLICT DO NOTHING`,
  ),
  deleteBlobs: withList((l) => `DELETE FROM blobs WHERE ${l}`),
  doom: sql('INSERT INTO gc_doomed (digest, location, size, doomed_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING'),
  doomed: sql<DoomedBlob>('SELECT digest, location, size FROM gc_doomed ORDER BY digest LIMIT ?'),
  forget: withList((l) => `DELETE FROM gc_doomed WHERE ${l}`),
  // Whether an object in storage belongs to anything: a blob or a blob being deleted at that key, or an
  // upload moving its bytes there (by its recorded digest, or its own id where the key is per upload).
  objectInUse: sql<number>(
    `SELECT EXISTS (SELECT 1 FROM blobs WHERE location = @key)
         OR EXISTS (SELECT 1 FROM gc_doomed WHERE location = @key)
         OR (CAST(@digest AS TEXT) IS NOT NULL AND EXISTS (SELECT 1 FROM uploads WHERE digest = @digest))
         OR (CAST(@upload AS TEXT) IS NOT NULL AND EXISTS (SELECT 1 FROM uploads WHERE id = @upload))`,
    { pluck: true },
  ),
  uploadExists: sql<number>('SELECT EXISTS (SELECT 1 FROM uploads WHERE id = ?)', { pluck: true }),
  lockHolder: sql<LockHolder & { heartbeatAt: number }>('SELECT host, pid, heartbeat_at AS "heartbeatAt" FROM gc_lock WHERE id = 1'),
  takeLock: sql(
    `INSERT INTO gc_lock (id, host, pid, heartbeat_at) VALUES (1, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, heartbeat_at = excluded.heartbeat_at`,
  ),
  heartbeat: sql('UPDATE gc_lock SET heartbeat_at = ? WHERE id = 1 AND host = ? AND pid = ?'),
  releaseLock: sql('DELETE FROM gc_lock WHERE id = 1 AND host = ? AND pid = ?'),
};

export class GcIndex extends IndexObject {
  constructor(db: Db | IndexDatabase) {
    super(databaseOf(db));
  }

  /**
   * Take the collection lock for `me`, unless another holder is alive: its heartbeat is newer than
   * `staleBefore` and `isGone` does not say it is dead. Returns the live holder when it is not taken.
   */
  async takeLock(me: LockHolder, staleBefore: number, isGone: (holder: LockHolder) => boolean): Promise<LockHolder | null> {
    return this.transaction(async (tx) => {
      const self = tx(this);
      const holder = await self.sql.get(Q.lockHolder);
      const mine = holder && holder.host === me.host && holder.pid === me.pid;
      if (holder && !mine && holder.heartbeatAt >= staleBefore && !isGone(holder)) return { host: holder.host, pid: holder.pid };
      await self.sql.run(Q.takeLock, me.host, me.pid, Date.now());
      return null;
    });
  }

  /** Say the holder is still at work; false if it no longer holds the lock (taken over as stale). */
  async heartbeat(me: LockHolder): Promise<boolean> {
    return (await this.sql.run(Q.heartbeat, Date.now(), me.host, me.pid)).changes === 1;
  }

  async releaseLock(me: LockHolder): Promise<void> {
    await this.sql.run(Q.releaseLock, me.host, me.pid);
  }

  /** Repository names after `after`, at most `limit`, in byte order. */
  repositories(after: string, limit: number): Promise<string[]> {
    return this.sql.all(Q.repositories, after, limit);
  }

  /** Delete up to `limit` manifests of `repo` that no tag reaches and that are older than `cutoff`; returns them. */
  async deleteUnreachableManifests(repo: string, cutoff: number, limit: number): Promise<Digest[]> {
    return this.transaction(async (tx) => {
      const self = tx(this);
      const gone = await self.sql.all(Q.unreachableManifests, { repo, cutoff, limit });
      if (gone.length === 0) return gone;
      const params = { repo, digests: JSON.stringify(gone) };
      for (const q of [Q.deleteManifests, Q.deleteRefs, Q.deleteTags, Q.unlink]) await self.sql.run(q, params);
      return gone;
    });
  }

  /** Remove the links of `repo` older than `cutoff` that no manifest there is or names; returns how many. */
  async removeUnusedLinks(repo: string, cutoff: number): Promise<number> {
    return (await this.sql.run(Q.unusedLinks, { repo, cutoff })).changes;
  }

  /**
   * Move the blobs of the next window after `after` that nothing refers to and that are older than `cutoff`
   * out of `blobs` into gc_doomed, in one transaction. Returns them and where the next window starts (null: done).
   */
  async doomUnreferenced(after: string, cutoff: number): Promise<{ doomed: DoomedBlob[]; next: string | null }> {
    return this.transaction(async (tx) => {
      const self = tx(this);
      const upto = (await self.sql.get(Q.windowEnd, { after, window: SCAN_WINDOW })) ?? null;
      if (upto === null) return { doomed: [], next: null };
      const doomed = await self.sql.all(Q.unreferenced, { after, upto, cutoff });
      if (doomed.length > 0) {
        const digests = JSON.stringify(doomed.map((b) => b.digest));
        await self.sql.run(Q.doomBlobs, { digests, now: Date.now() });
        await self.sql.run(Q.deleteBlobs, { digests });
      }
      return { doomed, next: upto };
    });
  }

  /** Blobs whose bytes are being deleted (left by a run that stopped), at most `limit`. */
  doomedBlobs(limit: number): Promise<DoomedBlob[]> {
    return this.sql.all(Q.doomed, limit);
  }

  /** The bytes of these doomed blobs are gone: a push of the same digest may store it again. */
  async forgetDoomed(digests: readonly Digest[]): Promise<void> {
    if (digests.length > 0) await this.sql.run(Q.forget, { digests: JSON.stringify(digests) });
  }

  /**
   * Doom an object the index never recorded, unless it belongs to a blob, a blob being deleted or an upload
   * in flight: from then on no upload moves bytes of that digest there until forgetDoomed (the entry is
   * keyed by the digest, or by the key where the key is per upload). False if it is in use.
   */
  async doomStray(key: string, size: number, digest: Digest | null, upload: string | null): Promise<boolean> {
    return this.transaction(async (tx) => {
      const self = tx(this);
      if ((await self.sql.get(Q.objectInUse, { key, digest, upload })) === 1) return false;
      await self.sql.run(Q.doom, digest ?? key, key, size, Date.now());
      return true;
    });
  }

  async uploadExists(id: string): Promise<boolean> {
    return (await this.sql.get(Q.uploadExists, id)) === 1;
  }
}
