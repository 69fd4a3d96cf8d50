import type { Db } from './db';
import { SqliteIndexObject, type Tx } from './connection';
import type { Digest } from '../storage/digest';
import { ALL_NAMES, nameRanges, type NamePattern } from './name-filter';

// The metadata index: what the bytes mean. Every statement here is prepared once; multi-step changes
// run in one transaction (transaction(), connection.ts), their work going through its `tx`.

export interface BlobRecord {
  digest: Digest;
  size: number;
  location: string;
}

export interface UploadRecord {
  id: string;
  repo: string | null;
  /** Who opened it: a user name, or "@<address>" for an anonymous caller (null: a one-shot ingest). */
  owner?: string | null;
  /** The digest verified just before the bytes were moved into place (see BlobStore.commit). */
  digest?: Digest | null;
  size: number;
  state: Record<string, unknown>;
  startedAt: number;
  updatedAt: number;
}

export interface SearchHit {
  name: string;
  description: string;
}

/**
 * Repositories of one range of names (name-filter.ts) whose name or description contains @q (NULL: any), read
 * along the name index; the substring match runs on the trigram index of repo_search, which LIKE uses.
 */
const searchFrom = (upperBound: string) =>
  `FROM repositories WHERE name >= @from ${upperBound}
     AND (@like IS NULL OR name LIKE @like ESCAPE '\\') AND (@regex IS NULL OR name REGEXP @regex)
     AND (@q IS NULL OR rowid IN (SELECT rowid FROM repo_search WHERE name LIKE @q ESCAPE '\\' OR description LIKE @q ESCAPE '\\'))`;

export class MetadataIndex extends SqliteIndexObject {
  private readonly s;

  constructor(private readonly db: Db) {
    super(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      getBlob: p('SELECT digest, size, location FROM blobs WHERE digest = ?'),
      putBlob: p('INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING'),

      // One statement counts and inserts, so concurrent POSTs cannot all slip under the limit.
      createUpload: p(
        `INSERT INTO uploads (id, repo, owner, size, state, started_at, updated_at)
         SELECT @id, @repo, @owner, 0, @state, @now, @now
          WHERE @owner IS NULL OR (SELECT count(*) FROM uploads WHERE owner = @owner) < @max`,
      ),
      getUpload: p('SELECT id, repo, owner, digest, size, state, started_at, updated_at FROM uploads WHERE id = ?'),
      // Refused while a garbage collection is deleting the bytes of this digest (they share its location).
      setUploadDigest: p(
        `UPDATE uploads SET digest = @digest, size = @size, state = @state, updated_at = @now
          WHERE id = @id AND NOT EXISTS (SELECT 1 FROM gc_doomed WHERE digest = @digest)`,
      ),
      updateUpload: p('UPDATE uploads SET size = ?, state = ?, updated_at = ? WHERE id = ?'),
      deleteUpload: p('DELETE FROM uploads WHERE id = ?'),
      allUploads: p('SELECT id, repo, owner, digest, size, state, started_at, updated_at FROM uploads'),
      staleUploads: p('SELECT id, repo, owner, digest, size, state, started_at, updated_at FROM uploads WHERE updated_at < ?'),

      ensureRepo: p('INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING'),
      getRepo: p('SELECT name, description, v1_private, v1_indexed FROM repositories WHERE name = ?'),
      deleteRepo: p('DELETE FROM repositories WHERE name = ?'),
      setV1Private: p('UPDATE repositories SET v1_private = ? WHERE name = ?'),
      // One range of names (name-filter.ts): with and without an end, so that both bounds seek the index.
      searchRange: p(`SELECT name, description ${searchFrom('AND name < @to')} ORDER BY name LIMIT @limit OFFSET @offset`),
      searchFrom: p(`SELECT name, description ${searchFrom('')} ORDER BY name LIMIT @limit OFFSET @offset`),
      searchCountRange: p(`SELECT count(*) AS n ${searchFrom('AND name < @to')}`),
      searchCountFrom: p(`SELECT count(*) AS n ${searchFrom('')}`),

    };
  }

  /**
   * Run `fn` in one transaction that holds the write lock from its start (BEGIN IMMEDIATE): a check and
   * the write that depends on it cannot be split by another request's or process's write (a garbage
   * collection run from the CLI). Its work goes through `tx`: `tx(index)` is `index` bound to it. Called on
   * an object bound to a transaction, it is a savepoint of that one.
   */
  override transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return super.transaction(fn);
  }

  /** Told how long each outermost transaction() took, in seconds, waiting for its turn included (metrics). */
  set onTransaction(observe: ((seconds: number) => void) | undefined) {
    this.conn.onTransaction = observe;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  /** A trivial query, for readiness checks. */
  ping(): Promise<void> {
    return this.run(() => void this.db.prepare('SELECT 1').get());
  }

  // ---- blobs ----

  getBlob(digest: Digest): Promise<BlobRecord | undefined> {
    return this.run(() => this.s.getBlob.get(digest) as BlobRecord | undefined);
  }

  /** Record a committed blob; if it is already known, the existing record wins and is returned. */
  putBlob(rec: BlobRecord): Promise<BlobRecord> {
    return this.run(() => {
      this.s.putBlob.run(rec.digest, rec.size, rec.location, Date.now());
      return this.s.getBlob.get(rec.digest) as BlobRecord;
    });
  }

  // ---- uploads ----

  /** Record a new upload; false (nothing recorded) if `owner` already has `maxOpen` uploads open. */
  createUpload(id: string, repo: string | null, state: Record<string, unknown>, owner: string | null = null, maxOpen = Infinity): Promise<boolean> {
    return this.run(() => {
      const max = Number.isFinite(maxOpen) ? maxOpen : Number.MAX_SAFE_INTEGER;
      return this.s.createUpload.run({ id, repo, owner, state: JSON.stringify(state), now: Date.now(), max }).changes === 1;
    });
  }

  /**
   * Remember the digest and size an upload's bytes were verified to have, before they are moved into place;
   * false (nothing recorded) while a garbage collection is deleting a blob of that digest.
   */
  setUploadDigest(id: string, digest: Digest, size: number, state: Record<string, unknown>): Promise<boolean> {
    return this.run(() => this.s.setUploadDigest.run({ id, digest, size, state: JSON.stringify(state), now: Date.now() }).changes === 1);
  }

  getUpload(id: string): Promise<UploadRecord | undefined> {
    return this.run(() => {
      const row = this.s.getUpload.get(id) as UploadRow | undefined;
      return row && uploadFromRow(row);
    });
  }

  updateUpload(id: string, size: number, state: Record<string, unknown>): Promise<void> {
    return this.run(() => void this.s.updateUpload.run(size, JSON.stringify(state), Date.now(), id));
  }

  deleteUpload(id: string): Promise<void> {
    return this.run(() => void this.s.deleteUpload.run(id));
  }

  allUploads(): Promise<UploadRecord[]> {
    return this.run(() => (this.s.allUploads.all() as UploadRow[]).map(uploadFromRow));
  }

  staleUploads(updatedBefore: number): Promise<UploadRecord[]> {
    return this.run(() => (this.s.staleUploads.all(updatedBefore) as UploadRow[]).map(uploadFromRow));
  }

  // ---- repositories ----

  ensureRepository(name: string): Promise<void> {
    return this.run(() => void this.s.ensureRepo.run(name, Date.now()));
  }

  getRepository(name: string): Promise<{ name: string; description: string; v1Private: boolean; v1Indexed: boolean } | undefined> {
    return this.run(() => {
      const row = this.s.getRepo.get(name) as
        | { name: string; description: string; v1_private: number; v1_indexed: number }
        | undefined;
      return row && { name: row.name, description: row.description, v1Private: !!row.v1_private, v1Indexed: !!row.v1_indexed };
    });
  }

  deleteRepository(name: string): Promise<boolean> {
    return this.run(() => this.s.deleteRepo.run(name).changes === 1);
  }

  setV1Private(name: string, priv: boolean): Promise<void> {
    return this.run(() => void this.s.setV1Private.run(priv ? 1 : 0, name));
  }

  /**
   * Substring search on names and descriptions, case-insensitive for ASCII, over the repositories
   * `visible` matches (pagination and totals run over that list). Work is one count per range of
   * names, then the page from the ranges it falls in.
   */
  search(query: string, limit: number, offset: number, visible: readonly NamePattern[] = ALL_NAMES): Promise<{ total: number; hits: SearchHit[] }> {
    return this.run(() => {
      const q = query === '' ? null : '%' + query.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
      const ranges = nameRanges(visible).map((r) => ({ from: r.from, regex: r.regex, like: r.like, q, ...(r.to === null ? {} : { to: r.to }) }));
      const counts = ranges.map((r) => ((r.to === undefined ? this.s.searchCountFrom : this.s.searchCountRange).get(r) as { n: number }).n);
      const hits: SearchHit[] = [];
      let skip = offset;
      for (const [i, r] of ranges.entries()) {
        if (hits.length >= limit) break;
        if (skip >= counts[i]!) {
          skip -= counts[i]!;
          continue;
        }
        const page = { ...r, limit: limit - hits.length, offset: skip };
        hits.push(...((r.to === undefined ? this.s.searchFrom : this.s.searchRange).all(page) as SearchHit[]));
        skip = 0;
      }
      return { total: counts.reduce((a, b) => a + b, 0), hits };
    });
  }

}

interface UploadRow {
  id: string;
  repo: string | null;
  owner: string | null;
  digest: Digest | null;
  size: number;
  state: string;
  started_at: number;
  updated_at: number;
}

function uploadFromRow(r: UploadRow): UploadRecord {
  return {
    id: r.id,
    repo: r.repo,
    owner: r.owner,
    digest: r.digest,
    size: r.size,
    state: JSON.parse(r.state),
    startedAt: r.started_at,
    updatedAt: r.updated_at,
  };
}
