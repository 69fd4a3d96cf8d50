import type { Statement } from 'better-sqlite3';
import type { Db } from './db';
import { SqliteIndexObject } from './connection';
import { nameRanges, type NamePattern, type NameRange } from './name-filter';
import type { Digest } from '../storage/digest';

// Read-only queries the web UI needs (src/ui), answered from the index in one statement each: repository
// listings sorted by name, last push or size with keyset pagination, a repository's tags of both protocols
// with what the tag page shows, and usage. The only write is the repository description (v1 metadata).
// Access is never decided here: callers pass the name patterns AccessControl computed (name-filter.ts).

export type RepoSort = 'name' | 'pushed' | 'size';

export interface RepoRow {
  name: string;
  description: string;
  /** Last push (ms): newest tag update, manifest or v1 image; the repository's creation without any. */
  pushedAt: number;
  /** Bytes charged to the repository (usage-index.ts), 0 when none. */
  bytes: number;
  tags: number;
}

/** Where a page starts: after this row in the sort order (keyset pagination). */
export interface RepoCursor {
  name: string;
  /** The sort key of that row: pushedAt or bytes (unused for name). */
  key?: number;
}

export interface RepoPage {
  rows: RepoRow[];
  total: number;
  /** The cursor of the next page (undefined: this is the last). */
  next?: RepoCursor;
}

export interface TagRow {
  tag: string;
  digest: Digest;
  mediaType: string;
  /** Bytes of the manifest itself. */
  manifestSize: number;
  /** Bytes of every distinct blob the manifest reaches (layers, configs, child manifests of an index). */
  totalSize: number;
  createdAt: number;
  updatedAt: number;
  /** Last pull by this tag or of its manifest (recorded only when a retention policy uses pull times). */
  pulledAt: number | null;
  artifactType: string | null;
  /** Made by the bridge from the v1 tag of the same name (docs/bridge.md), not pushed over v2. */
  bridged: boolean;
}

export interface V1TagRow {
  tag: string;
  imageId: string;
  createdAt: number | null;
  /** Sum of the layer sizes of the image and its ancestors. */
  totalSize: number;
  layers: number;
}

export interface UsageRow {
  repo: string;
  bytes: number;
  blobs: number;
  /** Of `bytes`: blobs other repositories hold too, and blobs only this one holds. */
  sharedBytes: number;
  uniqueBytes: number;
}

export interface ManifestRow {
  digest: Digest;
  mediaType: string;
  size: number;
  createdAt: number;
  artifactType: string | null;
  subject: Digest | null;
  tags: number;
}

const PUSHED = `max(
    r.created_at,
    coalesce((SELECT max(t.updated_at) FROM tags t WHERE t.repo = r.name), 0),
    coalesce((SELECT max(m.created_at) FROM manifests m WHERE m.repo = r.name), 0),
    coalesce((SELECT max(i.created_at) FROM v1_images i WHERE i.repo = r.name), 0))`;
const BYTES = `coalesce((SELECT u.bytes FROM repo_usage u WHERE u.repo = r.name), 0)`;
const TAGS = `((SELECT count(*) FROM tags t WHERE t.repo = r.name) + (SELECT count(*) FROM v1_tags v WHERE v.repo = r.name))`;

/** The image a v1 tag names and its ancestors (depth-bounded as in v1-index.ts). */
const V1_CHAIN = `chain(id, depth) AS (
    SELECT v.image_id, 0
    UNION ALL
    SELECT p.parent, c.depth + 1 FROM chain c JOIN v1_images p ON p.repo = v.repo AND p.id = c.id WHERE p.parent IS NOT NULL AND c.depth < 1000)`;


/** SQL matching `column` against name ranges (name-filter.ts), one OR-ed clause per range; parameters go into `params`. */
function rangeFilter(ranges: NameRange[], column: string, params: Record<string, unknown>): string {
  return `(${ranges
    .map((r, i) => {
      params[`f${i}`] = r.from;
      let clause = `${column} >= @f${i}`;
      if (r.to !== null) {
        params[`t${i}`] = r.to;
        clause += ` AND ${column} < @t${i}`;
      }
      if (r.like !== null) {
        params[`l${i}`] = r.like;
        clause += ` AND ${column} LIKE @l${i} ESCAPE '\\'`;
      }
      if (r.regex !== null) {
        params[`x${i}`] = r.regex;
        clause += ` AND ${column} REGEXP @x${i}`;
      }
      return `(${clause})`;
    })
    .join(' OR ')})`;
}

export class BrowseIndex extends SqliteIndexObject {
  private readonly db: Db;
  private readonly cache = new Map<string, Statement>();
  private readonly s;

  constructor(db: Db) {
    super(db);
    this.db = db;
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      repo: p(`SELECT r.name, r.description, ${PUSHED} AS pushedAt, ${BYTES} AS bytes, ${TAGS} AS tags FROM repositories r WHERE r.name = ?`),
      tags: p(
        `SELECT t.tag, t.digest, m.media_type AS mediaType, m.size AS manifestSize, m.created_at AS createdAt,
                t.updated_at AS updatedAt, max(coalesce(t.pulled_at, 0), coalesce(m.pulled_at, 0)) AS pulledAt,
                m.artifact_type AS artifactType, t.bridged_from_v1 IS NOT NULL AS bridged,
                (WITH RECURSIVE reach(d) AS (
                   SELECT t.digest UNION SELECT x.child FROM manifest_refs x JOIN reach ON x.repo = t.repo AND x.digest = reach.d)
                 SELECT coalesce(sum(b.size), 0) FROM blobs b WHERE b.digest IN reach) AS totalSize
           FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
          WHERE t.repo = ? ORDER BY t.updated_at DESC, t.tag LIMIT ?`,
      ),
      v1Tags: p(
        `SELECT v.tag, v.image_id AS imageId, i.created_at AS createdAt,
                (WITH RECURSIVE ${V1_CHAIN} SELECT coalesce(sum(x.layer_size), 0) FROM chain JOIN v1_images x ON x.repo = v.repo AND x.id = chain.id) AS totalSize,
                (WITH RECURSIVE ${V1_CHAIN} SELECT count(*) FROM chain) AS layers
           FROM v1_tags v LEFT JOIN v1_images i ON i.repo = v.repo AND i.id = v.image_id
          WHERE v.repo = ? ORDER BY v.tag LIMIT ?`,
      ),
      untagged: p(
        `SELECT m.digest, m.media_type AS mediaType, m.size, m.created_at AS createdAt, m.artifact_type AS artifactType, m.subject,
                (SELECT count(*) FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest) AS tags
           FROM manifests m
          WHERE m.repo = ? AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest)
            AND NOT EXISTS (SELECT 1 FROM manifest_refs x WHERE x.repo = m.repo AND x.child = m.digest)
            AND m.subject IS NULL
          ORDER BY m.created_at DESC LIMIT ?`,
      ),
      tagsOf: p('SELECT tag FROM tags WHERE repo = ? AND digest = ? ORDER BY tag'),
      totalSizes: p(
        `SELECT j.value AS digest,
                (WITH RECURSIVE reach(d) AS (
                   SELECT j.value UNION SELECT x.child FROM manifest_refs x JOIN reach ON x.repo = @repo AND x.digest = reach.d)
                 SELECT coalesce(sum(b.size), 0) FROM blobs b WHERE b.digest IN reach) AS size
           FROM json_each(@digests) j WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo = @repo AND m.digest = j.value)`,
      ),
      // The manifest and what it names directly, less what another manifest or a v1 image of the repository
      // still uses: what the repository stops holding once it is deleted and garbage collection has run.
      reclaim: p(
        `SELECT coalesce(sum(b.size), 0) AS repoBytes,
                coalesce(sum(CASE WHEN NOT EXISTS (SELECT 1 FROM repo_charges o WHERE o.digest = d.digest AND o.repo <> @repo) THEN b.size ELSE 0 END), 0) AS storeBytes
           FROM (SELECT @digest AS digest UNION SELECT child FROM manifest_refs WHERE repo = @repo AND digest = @digest) d
           JOIN blobs b ON b.digest = d.digest
          WHERE NOT EXISTS (SELECT 1 FROM manifest_refs x WHERE x.repo = @repo AND x.child = d.digest AND x.digest <> @digest)
            AND NOT EXISTS (SELECT 1 FROM v1_images v WHERE v.repo = @repo AND v.json_digest = d.digest)
            AND NOT EXISTS (SELECT 1 FROM v1_images v WHERE v.repo = @repo AND v.layer_digest = d.digest)`,
      ),
      parentsOf: p('SELECT DISTINCT digest FROM manifest_refs WHERE repo = ? AND child = ? ORDER BY digest LIMIT 20').pluck(),
      manifestTimes: p('SELECT created_at AS createdAt, pulled_at AS pulledAt FROM manifests WHERE repo = ? AND digest = ?'),
      setDescription: p('UPDATE repositories SET description = ? WHERE name = ?'),
      blobSizes: p(`SELECT j.value AS digest, b.size FROM json_each(?) j JOIN blobs b ON b.digest = j.value`),
      v1Images: p(
        `SELECT j.value AS id, i.layer_size AS layerSize, i.created_at AS createdAt, i.json_digest AS jsonDigest
           FROM json_each(@ids) j JOIN v1_images i ON i.repo = @repo AND i.id = j.value`,
      ),
      totals: p(
        `SELECT (SELECT count(*) FROM repositories) AS repositories, (SELECT count(*) FROM blobs) AS blobs,
                (SELECT coalesce(sum(size), 0) FROM blobs) AS bytes, (SELECT count(*) FROM uploads) AS uploads,
                (SELECT coalesce(sum(size), 0) FROM uploads) AS uploadBytes, (SELECT count(*) FROM gc_doomed) AS doomed`,
      ),
    };
  }

  /**
   * One page of the repositories `visible` matches (and whose name or description contains `query`, on the
   * trigram index v1 search uses), in `sort` order (name ascending; last push and size descending, then
   * name), starting after `after`.
   */
  repositories(opts: { visible: readonly NamePattern[]; query?: string; sort: RepoSort; after?: RepoCursor; limit: number }): Promise<RepoPage> {
    return this.run(() => {
      const ranges = nameRanges(opts.visible);
      if (ranges.length === 0) return { rows: [], total: 0 };
      const q = opts.query ? '%' + opts.query.replace(/[\\%_]/g, (c) => '\\' + c) + '%' : null;
      const params: Record<string, unknown> = { q, limit: opts.limit + 1 };
      const filters = rangeFilter(ranges, 'r.name', params);
      const where = `${filters}
        AND (@q IS NULL OR r.rowid IN (SELECT rowid FROM repo_search WHERE name LIKE @q ESCAPE '\\' OR description LIKE @q ESCAPE '\\'))`;
      const total = (this.statement(`count:${ranges.length}`, () => `SELECT count(*) FROM repositories r WHERE ${where}`).pluck().get(params) as number) ?? 0;
      let page: string;
      if (opts.sort === 'name') {
        if (opts.after) params.afterName = opts.after.name;
        page = `SELECT r.name, r.description, ${PUSHED} AS pushedAt, ${BYTES} AS bytes, ${TAGS} AS tags FROM repositories r
                 WHERE ${where} ${opts.after ? 'AND r.name > @afterName' : ''} ORDER BY r.name LIMIT @limit`;
      } else {
        if (opts.after) {
          params.afterName = opts.after.name;
          params.afterKey = opts.after.key ?? 0;
        }
        // Only the sort key is computed for every repository (10,000 take a few tens of ms, see docs/ui.md);
        // the other columns only for the page.
        const keyExpr = opts.sort === 'pushed' ? PUSHED : BYTES;
        page = `SELECT r.name, r.description, ${PUSHED} AS pushedAt, ${BYTES} AS bytes, ${TAGS} AS tags
                  FROM (SELECT name, k FROM (SELECT r.name, ${keyExpr} AS k FROM repositories r WHERE ${where})
                         ${opts.after ? 'WHERE k < @afterKey OR (k = @afterKey AND name > @afterName)' : ''}
                         ORDER BY k DESC, name LIMIT @limit) p
                  JOIN repositories r ON r.name = p.name
                 ORDER BY p.k DESC, p.name`;
      }
      const rows = this.statement(`page:${opts.sort}:${ranges.length}:${!!opts.after}`, () => page).all(params) as RepoRow[];
      let next: RepoCursor | undefined;
      if (rows.length > opts.limit) {
        rows.length = opts.limit;
        const last = rows[rows.length - 1]!;
        next = { name: last.name, ...(opts.sort === 'name' ? {} : { key: opts.sort === 'pushed' ? last.pushedAt : last.bytes }) };
      }
      return { rows, total, next };
    });
  }

  private statement(key: string, sql: () => string): Statement {
    let s = this.cache.get(key);
    if (!s) {
      if (this.cache.size > 200) this.cache.clear();
      s = this.db.prepare(sql());
      this.cache.set(key, s);
    }
    return s;
  }

  repository(name: string): Promise<RepoRow | undefined> {
    return this.run(() => this.s.repo.get(name) as RepoRow | undefined);
  }

  /** v2 tags, newest first, with what the repository page shows (at most `limit`). */
  tags(repo: string, limit: number): Promise<TagRow[]> {
    return this.run(() => (this.s.tags.all(repo, limit) as (Omit<TagRow, 'bridged'> & { pulledAt: number; bridged: number })[]).map((r) => ({ ...r, pulledAt: r.pulledAt || null, bridged: r.bridged === 1 })));
  }

  v1Tags(repo: string, limit: number): Promise<V1TagRow[]> {
    return this.run(() => this.s.v1Tags.all(repo, limit) as V1TagRow[]);
  }

  /** Manifests no tag, index or subject reaches: what a push by digest left. */
  untagged(repo: string, limit: number): Promise<ManifestRow[]> {
    return this.run(() => this.s.untagged.all(repo, limit) as ManifestRow[]);
  }

  tagsOf(repo: string, digest: Digest): Promise<string[]> {
    return this.run(() => (this.s.tagsOf.all(repo, digest) as { tag: string }[]).map((r) => r.tag));
  }

  /**
   * Bytes deleting manifest `digest` lets garbage collection take: out of the repository (`repoBytes`), and of
   * those, bytes no other repository holds, freed in storage (`storeBytes`). Children of an index count
   * when nothing else in the repository lists them (they stay as untagged manifests unless gc.untagged is delete).
   */
  reclaimable(repo: string, digest: Digest): Promise<{ repoBytes: number; storeBytes: number }> {
    return this.run(() => this.s.reclaim.get({ repo, digest }) as { repoBytes: number; storeBytes: number });
  }

  /** For each manifest of `repo` among `digests`: the bytes of every distinct blob it reaches (itself included). */
  totalSizes(repo: string, digests: readonly string[]): Promise<Map<string, number>> {
    return this.run(() => {
      const rows = this.s.totalSizes.all({ repo, digests: JSON.stringify(digests) }) as { digest: string; size: number }[];
      return new Map(rows.map((r) => [r.digest, r.size]));
    });
  }

  /** Indexes of this repository that list `digest` (so a child manifest links back to them). */
  parentsOf(repo: string, digest: Digest): Promise<Digest[]> {
    return this.run(() => this.s.parentsOf.all(repo, digest) as Digest[]);
  }

  manifestTimes(repo: string, digest: Digest): Promise<{ createdAt: number; pulledAt: number | null } | undefined> {
    return this.run(() => this.s.manifestTimes.get(repo, digest) as { createdAt: number; pulledAt: number | null } | undefined);
  }

  /** Sizes of the blobs the store knows among `digests`. */
  blobSizes(digests: readonly string[]): Promise<Map<string, number>> {
    return this.run(() => {
      const rows = this.s.blobSizes.all(JSON.stringify(digests)) as { digest: string; size: number }[];
      return new Map(rows.map((r) => [r.digest, r.size]));
    });
  }

  /** Layer sizes and push times of v1 images of `repo`. */
  v1Images(repo: string, ids: readonly string[]): Promise<Map<string, { layerSize: number | null; createdAt: number; jsonDigest: Digest }>> {
    return this.run(() => {
      const rows = this.s.v1Images.all({ repo, ids: JSON.stringify(ids) }) as { id: string; layerSize: number | null; createdAt: number; jsonDigest: Digest }[];
      return new Map(rows.map((r) => [r.id, r]));
    });
  }

  /** Set the description (v1 metadata, searched by v1 search); false if there is no such repository. */
  setDescription(repo: string, description: string): Promise<boolean> {
    return this.run(() => this.db.transaction(() => this.s.setDescription.run(description, repo).changes === 1).immediate());
  }

  /**
   * The `limit` repositories `visible` matches that use the most bytes (repo_usage, kept by triggers), with
   * the bytes they share with other repositories; and the count and bytes of all of them.
   */
  usage(visible: readonly NamePattern[], limit: number): Promise<{ rows: UsageRow[]; repositories: number; bytes: number }> {
    return this.run(() => {
      const ranges = nameRanges(visible);
      if (ranges.length === 0) return { rows: [], repositories: 0, bytes: 0 };
      const params: Record<string, unknown> = { limit };
      const where = rangeFilter(ranges, 'u.repo', params);
      const sum = this.statement(`usageSum:${ranges.length}`, () => `SELECT count(*) AS repositories, coalesce(sum(bytes), 0) AS bytes FROM repo_usage u WHERE ${where}`).get(params) as {
        repositories: number;
        bytes: number;
      };
      const rows = this.statement(
        `usageTop:${ranges.length}`,
        () => `SELECT u.repo, u.bytes, u.blobs,
            (SELECT coalesce(sum(c.size), 0) FROM repo_charges c WHERE c.repo = u.repo
                AND EXISTS (SELECT 1 FROM repo_charges o WHERE o.digest = c.digest AND o.repo <> c.repo)) AS sharedBytes
          FROM (SELECT * FROM repo_usage u WHERE ${where} ORDER BY bytes DESC, repo LIMIT @limit) u ORDER BY u.bytes DESC, u.repo`,
      ).all(params) as Omit<UsageRow, 'uniqueBytes'>[];
      return { ...sum, rows: rows.map((r) => ({ ...r, uniqueBytes: r.bytes - r.sharedBytes })) };
    });
  }

  totals(): Promise<{ repositories: number; blobs: number; bytes: number; uploads: number; uploadBytes: number; doomed: number }> {
    return this.run(() => this.s.totals.get() as { repositories: number; blobs: number; bytes: number; uploads: number; uploadBytes: number; doomed: number });
  }
}
