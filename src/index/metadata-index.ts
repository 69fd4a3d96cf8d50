import type { Db } from './db';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase, type Tx } from './database';
import { sql } from './sql';
import type { Digest } from '../storage/digest';
import { ALL_NAMES, nameRanges, type NamePattern } from './name-filter';
import type { UploadHold } from './upload-locks';

// The metadata index: what the bytes mean. Multi-step changes run in one transaction (transaction(),
// database.ts), their work going through its `tx`.

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
 * along the name index; the substring match runs on a trigram index (SQLite: the repo_search table, which
 * LIKE uses; PostgreSQL: pg_trgm's, which ILIKE uses).
 */
const searchFrom = (upperBound: string, dialect: 'sqlite' | 'postgres') =>
  `FROM repositories WHERE name >= @from ${upperBound}
     AND (CAST(@like AS TEXT) IS NULL OR name LIKE @like ESCAPE '\\') AND (CAST(@regex AS TEXT) IS NULL OR name REGEXP @regex)
     AND ${
       dialect === 'sqlite'
         ? `(@q IS NULL OR rowid IN (SELECT rowid FROM repo_search WHERE name LIKE @q ESCAPE '\\' OR description LIKE @q ESCAPE '\\'))`
         : `(CAST(@q AS TEXT) IS NULL OR name ILIKE @q ESCAPE '\\' OR description ILIKE @q ESCAPE '\\')`
     }`;

const Q = {
  getBlob: sql<BlobRecord>('SELECT digest, size, location FROM blobs WHERE digest = ?'),
  putBlob: sql<BlobRecord>('INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING RETURNING digest, size, location'),

  // One statement counts and inserts, so concurrent POSTs cannot all slip under the limit.
  createOwnedUpload: sql(
    `INSERT INTO uploads (id, repo, owner, size, state, started_at, updated_at)
     SELECT @id, @repo, @owner, 0, @state, @now, @now
      WHERE (SELECT count(*) FROM uploads WHERE owner = @owner) < @max`,
  ),
  // No owner, nothing to count (a one-shot ingest's row): nothing checked, no write lock needed.
  createUpload: sql(
    `INSERT INTO uploads (id, repo, owner, size, state, started_at, updated_at) VALUES (@id, @repo, NULL, 0, @state, @now, @now)`,
    { lock: 'none' },
  ),
  // A one-shot ingest whose bytes are announced to have @digest: recorded at once (see setUploadDigest), unless
  // a garbage collection is deleting that digest. Returns the digest recorded, or NULL.
  createAnnouncedUpload: sql<{ digest: Digest | null }>(
    `INSERT INTO uploads (id, repo, owner, digest, size, state, started_at, updated_at)
     SELECT @id, NULL, NULL, CASE WHEN NOT EXISTS (SELECT 1 FROM gc_doomed WHERE digest = @digest) THEN CAST(@digest AS TEXT) END, 0, @state, @now, @now
     RETURNING digest`,
    { lock: 'shared' },
  ),
  getUpload: sql<UploadRow>('SELECT id, repo, owner, digest, size, state, started_at, updated_at FROM uploads WHERE id = ?'),
  // Refused while a garbage collection is deleting the bytes of this digest (they share its location).
  setUploadDigest: sql(
    `UPDATE uploads SET digest = @digest, size = @size, state = @state, updated_at = @now
      WHERE id = @id AND NOT EXISTS (SELECT 1 FROM gc_doomed WHERE digest = @digest)`,
    { lock: 'shared' },
  ),
  updateUpload: sql('UPDATE uploads SET size = ?, state = ?, updated_at = ? WHERE id = ?'),
  deleteUpload: sql('DELETE FROM uploads WHERE id = ?'),
  allUploads: sql<UploadRow>('SELECT id, repo, owner, digest, size, state, started_at, updated_at FROM uploads'),
  staleUploads: sql<UploadRow>('SELECT id, repo, owner, digest, size, state, started_at, updated_at FROM uploads WHERE updated_at < ?'),

  ensureRepo: sql('INSERT INTO repositories (name, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING'),
  getRepo: sql<{ name: string; description: string; v1_private: number; v1_indexed: number }>(
    'SELECT name, description, v1_private, v1_indexed FROM repositories WHERE name = ?',
  ),
  deleteRepo: sql('DELETE FROM repositories WHERE name = ?'),
  setV1Private: sql('UPDATE repositories SET v1_private = ? WHERE name = ?'),
  // One range of names (name-filter.ts): with and without an end, so that both bounds seek the index.
  searchRange: sql<SearchHit>(`SELECT name, description ${searchFrom('AND name < @to', 'sqlite')} ORDER BY name LIMIT @limit OFFSET @offset`, {
    postgres: `SELECT name, description ${searchFrom('AND name < @to', 'postgres')} ORDER BY name LIMIT @limit OFFSET @offset`,
  }),
  searchFrom: sql<SearchHit>(`SELECT name, description ${searchFrom('', 'sqlite')} ORDER BY name LIMIT @limit OFFSET @offset`, {
    postgres: `SELECT name, description ${searchFrom('', 'postgres')} ORDER BY name LIMIT @limit OFFSET @offset`,
  }),
  searchCountRange: sql<number>(`SELECT count(*) ${searchFrom('AND name < @to', 'sqlite')}`, {
    pluck: true,
    postgres: `SELECT count(*) ${searchFrom('AND name < @to', 'postgres')}`,
  }),
  searchCountFrom: sql<number>(`SELECT count(*) ${searchFrom('', 'sqlite')}`, { pluck: true, postgres: `SELECT count(*) ${searchFrom('', 'postgres')}` }),
  ping: sql('SELECT 1'),
};

export class MetadataIndex extends IndexObject {
  constructor(db: Db | IndexDatabase) {
    super(databaseOf(db));
  }

  /**
   * Run `fn` in one transaction that holds the write lock from its start: a check and the write that
   * depends on it cannot be split by another request's or process's write (a garbage collection run from
   * the CLI). Its work goes through `tx`: `tx(index)` is `index` bound to it. Called on an object bound to
   * a transaction, it is a savepoint of that one.
   */
  override transaction<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    return super.transaction(fn);
  }

  /** Told how long each outermost transaction() took, in seconds, waiting for its turn included (metrics). */
  set onTransaction(observe: ((seconds: number) => void) | undefined) {
    this.database.onTransaction = observe;
  }

  close(): Promise<void> {
    return this.database.close();
  }

  /** A trivial query, for readiness checks. */
  async ping(): Promise<void> {
    await this.sql.get(Q.ping);
  }

  // ---- blobs ----

  getBlob(digest: Digest): Promise<BlobRecord | undefined> {
    return this.sql.get(Q.getBlob, digest);
  }

  /** Record a committed blob; if it is already known, the existing record wins and is returned. */
  async putBlob(rec: BlobRecord): Promise<BlobRecord> {
    const put = await this.sql.get(Q.putBlob, rec.digest, rec.size, rec.location, Date.now());
    return put ?? (await this.sql.get(Q.getBlob, rec.digest)) ?? rec;
  }

  // ---- uploads ----

  /** Record a new upload; false (nothing recorded) if `owner` already has `maxOpen` uploads open. */
  async createUpload(id: string, repo: string | null, state: Record<string, unknown>, owner: string | null = null, maxOpen = Infinity): Promise<boolean> {
    const row = { id, repo, state: JSON.stringify(state), now: Date.now() };
    if (owner === null) return (await this.sql.run(Q.createUpload, row)).changes === 1;
    const max = Number.isFinite(maxOpen) ? maxOpen : Number.MAX_SAFE_INTEGER;
    return (await this.sql.run(Q.createOwnedUpload, { ...row, owner, max })).changes === 1;
  }

  /**
   * Record a one-shot ingest (no repository, no owner) whose bytes are announced to have `digest`, with that
   * digest recorded as setUploadDigest would (so garbage collection leaves it alone from now on): the
   * commit need not record it again if the bytes prove it. Returns whether it was recorded (not while a
   * garbage collection is deleting a blob of that digest).
   */
  async createAnnouncedUpload(id: string, state: Record<string, unknown>, digest: Digest): Promise<boolean> {
    const row = await this.sql.get(Q.createAnnouncedUpload, { id, digest, state: JSON.stringify(state), now: Date.now() });
    return row?.digest === digest;
  }

  /**
   * Remember the digest and size an upload's bytes were verified to have, before they are moved into place;
   * false (nothing recorded) while a garbage collection is deleting a blob of that digest.
   */
  async setUploadDigest(id: string, digest: Digest, size: number, state: Record<string, unknown>): Promise<boolean> {
    return (await this.sql.run(Q.setUploadDigest, { id, digest, size, state: JSON.stringify(state), now: Date.now() })).changes === 1;
  }

  async getUpload(id: string): Promise<UploadRecord | undefined> {
    const row = await this.sql.get(Q.getUpload, id);
    return row && uploadFromRow(row);
  }

  /**
   * Take upload `id` for one request against other processes sharing this index (replicas), or null if one
   * of them holds it. Release the hold when the request ends.
   */
  takeUpload(id: string): Promise<UploadHold | null> {
    return this.database.uploadLocks.tryTake(id);
  }

  /** Record an upload's progress; false if its row is gone (finished, cancelled or purged meanwhile). */
  async updateUpload(id: string, size: number, state: Record<string, unknown>): Promise<boolean> {
    return (await this.sql.run(Q.updateUpload, size, JSON.stringify(state), Date.now(), id)).changes === 1;
  }

  async deleteUpload(id: string): Promise<void> {
    await this.sql.run(Q.deleteUpload, id);
  }

  async allUploads(): Promise<UploadRecord[]> {
    return (await this.sql.all(Q.allUploads)).map(uploadFromRow);
  }

  async staleUploads(updatedBefore: number): Promise<UploadRecord[]> {
    return (await this.sql.all(Q.staleUploads, updatedBefore)).map(uploadFromRow);
  }

  // ---- repositories ----

  async ensureRepository(name: string): Promise<void> {
    await this.sql.run(Q.ensureRepo, name, Date.now());
  }

  async getRepository(name: string): Promise<{ name: string; description: string; v1Private: boolean; v1Indexed: boolean } | undefined> {
    const row = await this.sql.get(Q.getRepo, name);
    return row && { name: row.name, description: row.description, v1Private: !!row.v1_private, v1Indexed: !!row.v1_indexed };
  }

  async deleteRepository(name: string): Promise<boolean> {
    return (await this.sql.run(Q.deleteRepo, name)).changes === 1;
  }

  async setV1Private(name: string, priv: boolean): Promise<void> {
    await this.sql.run(Q.setV1Private, priv ? 1 : 0, name);
  }

  /**
   * Substring search on names and descriptions, case-insensitive for ASCII, over the repositories
   * `visible` matches (pagination and totals run over that list). Work is one count per range of
   * names, then the page from the ranges it falls in.
   */
  async search(query: string, limit: number, offset: number, visible: readonly NamePattern[] = ALL_NAMES): Promise<{ total: number; hits: SearchHit[] }> {
    const q = query === '' ? null : '%' + query.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
    const ranges = nameRanges(visible).map((r) => ({ from: r.from, regex: r.regex, like: r.like, q, ...(r.to === null ? {} : { to: r.to }) }));
    const counts: number[] = [];
    for (const r of ranges) counts.push((await this.sql.get(r.to === undefined ? Q.searchCountFrom : Q.searchCountRange, r))!);
    const hits: SearchHit[] = [];
    let skip = offset;
    for (const [i, r] of ranges.entries()) {
      if (hits.length >= limit) break;
      if (skip >= counts[i]!) {
        skip -= counts[i]!;
        continue;
      }
      const page = { ...r, limit: limit - hits.length, offset: skip };
      hits.push(...(await this.sql.all(r.to === undefined ? Q.searchFrom : Q.searchRange, page)));
      skip = 0;
    }
    return { total: counts.reduce((a, b) => a + b, 0), hits };
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
