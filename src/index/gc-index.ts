import type { Db } from './db';
import { SqliteIndexObject } from './connection';
import type { Digest } from '../storage/digest';

// What garbage collection asks of the index. Every step that removes something checks, in the same
// transaction, that nothing refers to it; pushes write their references in the transaction that checks
// the blob is there (BlobStore's onStored). Transactions serialize, so one of the two wins, never both.
// Methods are asynchronous so that an index on a database server can implement them too.

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

export class GcIndex extends SqliteIndexObject {
  private readonly s;

  constructor(db: Db) {
    super(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      repositories: p('SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?').pluck(),
      // Manifests of a repository that no tag reaches: not tagged, no child of a kept index, no referrer
      // (subject) of a kept manifest, and not younger than the cutoff (those keep what they reach, too).
      unreachableManifests: p(
        `WITH RECURSIVE kept(digest) AS (
           SELECT digest FROM tags WHERE repo = @repo
           UNION SELECT digest FROM manifests WHERE repo = @repo AND created_at >= @cutoff
           UNION SELECT r.child FROM manifest_refs r JOIN kept k ON r.repo = @repo AND r.digest = k.digest
           UNION SELECT m.digest FROM manifests m JOIN kept k ON m.repo = @repo AND m.subject = k.digest
         )
         SELECT digest FROM manifests WHERE repo = @repo AND digest NOT IN (SELECT digest FROM kept) LIMIT @limit`,
      ).pluck(),
      deleteManifest: p('DELETE FROM manifests WHERE repo = ? AND digest = ?'),
      deleteRefs: p('DELETE FROM manifest_refs WHERE repo = ? AND digest = ?'),
      deleteTagsOf: p('DELETE FROM tags WHERE repo = ? AND digest = ?'),
      unlink: p('DELETE FROM repo_blobs WHERE repo = ? AND digest = ?'),
      // Links older than the cutoff that no manifest of the repository is or names.
      unusedLinks: p(
        `DELETE FROM repo_blobs WHERE repo = @repo AND linked_at < @cutoff
           AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo = @repo AND m.digest = repo_blobs.digest)
           AND NOT EXISTS (SELECT 1 FROM manifest_refs r WHERE r.repo = @repo AND r.child = repo_blobs.digest)`,
      ),
      // One window of blobs in digest order: its last digest, and those in it that nothing refers to.
      windowEnd: p('SELECT max(digest) FROM (SELECT digest FROM blobs WHERE digest > @after ORDER BY digest LIMIT @window)').pluck(),
      unreferenced: p(
        `SELECT digest, location, size FROM blobs b
          WHERE digest > @after AND digest <= @upto AND created_at < @cutoff
            AND NOT EXISTS (SELECT 1 FROM repo_blobs l WHERE l.digest = b.digest)
            AND NOT EXISTS (SELECT 1 FROM v1_images i WHERE i.json_digest = b.digest)
            AND NOT EXISTS (SELECT 1 FROM v1_images i WHERE i.layer_digest = b.digest)
            AND NOT EXISTS (SELECT 1 FROM uploads u WHERE u.digest = b.digest)`,
      ),
      doom: p('INSERT INTO gc_doomed (digest, location, size, doomed_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING'),
      deleteBlob: p('DELETE FROM blobs WHERE digest = ?'),
      doomed: p('SELECT digest, location, size FROM gc_doomed ORDER BY digest LIMIT ?'),
      forget: p('DELETE FROM gc_doomed WHERE digest = ?'),
      // Whether an object in storage belongs to anything: a blob or a blob being deleted at that key, or an
      // upload moving its bytes there (by its recorded digest, or its own id where the key is per upload).
      objectInUse: p(
        `SELECT EXISTS (SELECT 1 FROM blobs WHERE location = @key)
             OR EXISTS (SELECT 1 FROM gc_doomed WHERE location = @key)
             OR (@digest IS NOT NULL AND EXISTS (SELECT 1 FROM uploads WHERE digest = @digest))
             OR (@upload IS NOT NULL AND EXISTS (SELECT 1 FROM uploads WHERE id = @upload))`,
      ).pluck(),
      uploadExists: p('SELECT EXISTS (SELECT 1 FROM uploads WHERE id = ?)').pluck(),
      lockHolder: p('SELECT host, pid, heartbeat_at AS heartbeatAt FROM gc_lock WHERE id = 1'),
      takeLock: p('INSERT OR REPLACE INTO gc_lock (id, host, pid, heartbeat_at) VALUES (1, ?, ?, ?)'),
      heartbeat: p('UPDATE gc_lock SET heartbeat_at = ? WHERE id = 1 AND host = ? AND pid = ?'),
      releaseLock: p('DELETE FROM gc_lock WHERE id = 1 AND host = ? AND pid = ?'),
    };
  }

  /**
   * Take the collection lock for `me`, unless another holder is alive: its heartbeat is newer than
   * `staleBefore` and `isGone` does not say it is dead. Returns the live holder when it is not taken.
   */
  async takeLock(me: LockHolder, staleBefore: number, isGone: (holder: LockHolder) => boolean): Promise<LockHolder | null> {
    return this.transaction(async () => {
      const holder = this.s.lockHolder.get() as (LockHolder & { heartbeatAt: number }) | undefined;
      const mine = holder && holder.host === me.host && holder.pid === me.pid;
      if (holder && !mine && holder.heartbeatAt >= staleBefore && !isGone(holder)) return { host: holder.host, pid: holder.pid };
      this.s.takeLock.run(me.host, me.pid, Date.now());
      return null;
    });
  }

  /** Say the holder is still at work; false if it no longer holds the lock (taken over as stale). */
  heartbeat(me: LockHolder): Promise<boolean> {
    return this.run(() => this.s.heartbeat.run(Date.now(), me.host, me.pid).changes === 1);
  }

  releaseLock(me: LockHolder): Promise<void> {
    return this.run(() => {
      this.s.releaseLock.run(me.host, me.pid);
    });
  }

  /** Repository names after `after`, at most `limit`, in byte order. */
  repositories(after: string, limit: number): Promise<string[]> {
    return this.run(() => this.s.repositories.all(after, limit) as string[]);
  }

  /** Delete up to `limit` manifests of `repo` that no tag reaches and that are older than `cutoff`; returns them. */
  async deleteUnreachableManifests(repo: string, cutoff: number, limit: number): Promise<Digest[]> {
    return this.transaction(async () => {
      const gone = this.s.unreachableManifests.all({ repo, cutoff, limit }) as Digest[];
      for (const digest of gone) {
        this.s.deleteManifest.run(repo, digest);
        this.s.deleteRefs.run(repo, digest);
        this.s.deleteTagsOf.run(repo, digest);
        this.s.unlink.run(repo, digest);
      }
      return gone;
    });
  }

  /** Remove the links of `repo` older than `cutoff` that no manifest there is or names; returns how many. */
  async removeUnusedLinks(repo: string, cutoff: number): Promise<number> {
    return this.transaction(async () => this.s.unusedLinks.run({ repo, cutoff }).changes);
  }

  /**
   * Move the blobs of the next window after `after` that nothing refers to and that are older than `cutoff`
   * out of `blobs` into gc_doomed, in one transaction. Returns them and where the next window starts (null: done).
   */
  async doomUnreferenced(after: string, cutoff: number): Promise<{ doomed: DoomedBlob[]; next: string | null }> {
    return this.transaction(async () => {
      const upto = this.s.windowEnd.get({ after, window: SCAN_WINDOW }) as string | null;
      if (upto === null) return { doomed: [], next: null };
      const doomed = this.s.unreferenced.all({ after, upto, cutoff }) as DoomedBlob[];
      const now = Date.now();
      for (const b of doomed) {
        this.s.doom.run(b.digest, b.location, b.size, now);
        this.s.deleteBlob.run(b.digest);
      }
      return { doomed, next: upto };
    });
  }

  /** Blobs whose bytes are being deleted (left by a run that stopped), at most `limit`. */
  doomedBlobs(limit: number): Promise<DoomedBlob[]> {
    return this.run(() => this.s.doomed.all(limit) as DoomedBlob[]);
  }

  /** The bytes of these doomed blobs are gone: a push of the same digest may store it again. */
  async forgetDoomed(digests: readonly Digest[]): Promise<void> {
    return this.transaction(async () => {
      for (const d of digests) this.s.forget.run(d);
    });
  }

  /**
   * Doom an object the index never recorded, unless it belongs to a blob, a blob being deleted or an upload
   * in flight: from then on no upload moves bytes of that digest there until forgetDoomed (the entry is
   * keyed by the digest, or by the key where the key is per upload). False if it is in use.
   */
  async doomStray(key: string, size: number, digest: Digest | null, upload: string | null): Promise<boolean> {
    return this.transaction(async () => {
      if (this.s.objectInUse.get({ key, digest, upload }) === 1) return false;
      this.s.doom.run(digest ?? key, key, size, Date.now());
      return true;
    });
  }

  uploadExists(id: string): Promise<boolean> {
    return this.run(() => this.s.uploadExists.get(id) === 1);
  }
}
