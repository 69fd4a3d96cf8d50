import type { Db } from './db';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase } from './database';
import { nameRanges, rangeStart, type NamePattern, type NameRange } from './name-filter';
import { sql, type Query } from './sql';
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

type Dialect = 'sqlite' | 'postgres';

/** A statement whose text differs by dialect only where `text` says so. */
const dsql = <Row>(text: (d: Dialect) => string, opts: { pluck?: boolean } = {}): Query<Row> =>
  sql<Row>(text('sqlite'), { ...opts, postgres: text('postgres') });

/** The larger of its arguments: SQLite's scalar max(), PostgreSQL's greatest() (its max() is the aggregate only). */
const greatest = (d: Dialect, ...args: string[]) => `${d === 'sqlite' ? 'max' : 'greatest'}(${args.join(', ')})`;

const PUSHED = (d: Dialect) =>
  greatest(
    d,
    'r.created_at',
    'coalesce((SELECT max(t.updated_at) FROM tags t WHERE t.repo = r.name), 0)',
    'coalesce((SELECT max(m.created_at) FROM manifests m WHERE m.repo = r.name), 0)',
    'coalesce((SELECT max(i.created_at) FROM v1_images i WHERE i.repo = r.name), 0)',
  );
const BYTES = `coalesce((SELECT u.bytes FROM repo_usage u WHERE u.repo = r.name), 0)`;
const TAGS = `((SELECT count(*) FROM tags t WHERE t.repo = r.name) + (SELECT count(*) FROM v1_tags v WHERE v.repo = r.name))`;
const REPO_COLUMNS = (d: Dialect) => `r.name, r.description, ${PUSHED(d)} AS "pushedAt", ${BYTES} AS bytes, ${TAGS} AS tags`;

/** The image a v1 tag names and its ancestors (depth-bounded as in v1-index.ts). */
const V1_CHAIN = `chain(id, depth) AS (
    SELECT v.image_id, 0
    UNION ALL
    SELECT p.parent, c.depth + 1 FROM chain c JOIN v1_images p ON p.repo = v.repo AND p.id = c.id WHERE p.parent IS NOT NULL AND c.depth < 1000)`;

/**
 * The rows of a JSON array parameter of strings, as `j(value)`. PostgreSQL's are made COLLATE "C" like the
 * columns they meet (a recursive query refuses a start of another collation than its recursive term's).
 */
const jsonRows = (d: Dialect, param: string) =>
  d === 'sqlite' ? `json_each(${param}) j` : `(SELECT e.value COLLATE "C" AS value FROM json_array_elements_text(CAST(${param} AS json)) AS e(value)) j`;

/**
 * `column` within one range of names (name-filter.ts): from @from (`>=`, or `>` to start after a name), to
 * @to when `upper`; the like and regex parameters NULL when the range has none.
 */
const inRange = (column: string, upper: boolean, lower: '>=' | '>' = '>=') =>
  `${column} ${lower} @from ${upper ? `AND ${column} < @to` : ''}
   AND (CAST(@like AS TEXT) IS NULL OR ${column} LIKE @like ESCAPE '\\') AND (CAST(@regex AS TEXT) IS NULL OR ${column} REGEXP @regex)`;

/**
 * Repositories `r` of one range whose name or description contains @q (NULL: any), on the trigram index v1
 * search uses (SQLite: the repo_search table, which LIKE uses; PostgreSQL: pg_trgm's, which ILIKE uses).
 */
const repoWhere = (d: Dialect, upper: boolean, lower: '>=' | '>' = '>=') =>
  `${inRange('r.name', upper, lower)}
   AND ${
     d === 'sqlite'
       ? `(@q IS NULL OR r.rowid IN (SELECT rowid FROM repo_search WHERE name LIKE @q ESCAPE '\\' OR description LIKE @q ESCAPE '\\'))`
       : `(CAST(@q AS TEXT) IS NULL OR r.name ILIKE @q ESCAPE '\\' OR r.description ILIKE @q ESCAPE '\\')`
   }`;

/** One page of one range by name, from @from on. */
const byName = (upper: boolean, lower: '>=' | '>') =>
  dsql<RepoRow>((d) => `SELECT ${REPO_COLUMNS(d)} FROM repositories r WHERE ${repoWhere(d, upper, lower)} ORDER BY r.name LIMIT @limit`);

/**
 * One page of one range by a key, largest first, after (@afterKey, @afterName) unless @afterName is NULL.
 * Only the key is computed for every repository (10,000 take a few tens of ms, see docs/ui.md); the other
 * columns only for the page.
 */
const byKey = (key: (d: Dialect) => string, upper: boolean) =>
  dsql<RepoRow>(
    (d) => `SELECT ${REPO_COLUMNS(d)}
      FROM (SELECT name, k FROM (SELECT r.name, ${key(d)} AS k FROM repositories r WHERE ${repoWhere(d, upper)}) s
             WHERE CAST(@afterName AS TEXT) IS NULL OR k < @afterKey OR (k = @afterKey AND name > @afterName)
             ORDER BY k DESC, name LIMIT @limit) p
      JOIN repositories r ON r.name = p.name
     ORDER BY p.k DESC, p.name`,
  );

const usageSum = (upper: boolean) =>
  sql<{ repositories: number; bytes: number }>(`SELECT count(*) AS repositories, coalesce(sum(bytes), 0) AS bytes FROM repo_usage u WHERE ${inRange('u.repo', upper)}`);
const usageTop = (upper: boolean) =>
  sql<Omit<UsageRow, 'uniqueBytes'>>(
    `SELECT u.repo, u.bytes, u.blobs,
        (SELECT coalesce(sum(c.size), 0) FROM repo_charges c WHERE c.repo = u.repo
            AND EXISTS (SELECT 1 FROM repo_charges o WHERE o.digest = c.digest AND o.repo <> c.repo)) AS "sharedBytes"
      FROM (SELECT * FROM repo_usage u WHERE ${inRange('u.repo', upper)} ORDER BY bytes DESC, repo LIMIT @limit) u ORDER BY u.bytes DESC, u.repo`,
  );

/** Every blob a manifest (`start`) reaches in its repository (`repo`), itself included: the table `reach(d)`. */
const REACH = (repo: string, start: string) =>
  `reach(d) AS (SELECT ${start} UNION SELECT x.child FROM manifest_refs x JOIN reach ON x.repo = ${repo} AND x.digest = reach.d)`;

// Each listing has one statement per kind of range (with an end or not, from a name or after it), all made
// here: a bounded set, each prepared once per connection. Statements of one range each; the class merges.
const Q = {
  repo: dsql<RepoRow>((d) => `SELECT ${REPO_COLUMNS(d)} FROM repositories r WHERE r.name = ?`),
  countRange: dsql<number>((d) => `SELECT count(*) FROM repositories r WHERE ${repoWhere(d, true)}`, { pluck: true }),
  countFrom: dsql<number>((d) => `SELECT count(*) FROM repositories r WHERE ${repoWhere(d, false)}`, { pluck: true }),
  byNameRange: byName(true, '>='),
  byNameFrom: byName(false, '>='),
  byNameRangeAfter: byName(true, '>'),
  byNameFromAfter: byName(false, '>'),
  byPushedRange: byKey(PUSHED, true),
  byPushedFrom: byKey(PUSHED, false),
  bySizeRange: byKey(() => BYTES, true),
  bySizeFrom: byKey(() => BYTES, false),
  usageSumRange: usageSum(true),
  usageSumFrom: usageSum(false),
  usageTopRange: usageTop(true),
  usageTopFrom: usageTop(false),

  tags: dsql<Omit<TagRow, 'pulledAt' | 'bridged'> & { pulledAt: number; bridged: number }>(
    (d) => `SELECT t.tag, t.digest, m.media_type AS "mediaType", m.size AS "manifestSize", m.created_at AS "createdAt",
            t.updated_at AS "updatedAt", ${greatest(d, 'coalesce(t.pulled_at, 0)', 'coalesce(m.pulled_at, 0)')} AS "pulledAt",
            m.artifact_type AS "artifactType", t.bridged_from_v1 IS NOT NULL AS bridged,
            (WITH RECURSIVE ${REACH('t.repo', 't.digest')}
             SELECT coalesce(sum(b.size), 0) FROM blobs b WHERE b.digest IN (SELECT d FROM reach)) AS "totalSize"
       FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest
      WHERE t.repo = ? ORDER BY t.updated_at DESC, t.tag LIMIT ?`,
  ),
  v1Tags: sql<V1TagRow>(
    `SELECT v.tag, v.image_id AS "imageId", i.created_at AS "createdAt",
            (WITH RECURSIVE ${V1_CHAIN} SELECT coalesce(sum(x.layer_size), 0) FROM chain JOIN v1_images x ON x.repo = v.repo AND x.id = chain.id) AS "totalSize",
            (WITH RECURSIVE ${V1_CHAIN} SELECT count(*) FROM chain) AS layers
       FROM v1_tags v LEFT JOIN v1_images i ON i.repo = v.repo AND i.id = v.image_id
      WHERE v.repo = ? ORDER BY v.tag LIMIT ?`,
  ),
  untagged: sql<ManifestRow>(
    `SELECT m.digest, m.media_type AS "mediaType", m.size, m.created_at AS "createdAt", m.artifact_type AS "artifactType", m.subject,
            (SELECT count(*) FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest) AS tags
       FROM manifests m
      WHERE m.repo = ? AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repo = m.repo AND t.digest = m.digest)
        AND NOT EXISTS (SELECT 1 FROM manifest_refs x WHERE x.repo = m.repo AND x.child = m.digest)
        AND m.subject IS NULL
      ORDER BY m.created_at DESC LIMIT ?`,
  ),
  tagsOf: sql<string>('SELECT tag FROM tags WHERE repo = ? AND digest = ? ORDER BY tag', { pluck: true }),
  totalSizes: dsql<{ digest: string; size: number }>(
    (d) => `SELECT j.value AS digest,
            (WITH RECURSIVE ${REACH('@repo', 'j.value')}
             SELECT coalesce(sum(b.size), 0) FROM blobs b WHERE b.digest IN (SELECT d FROM reach)) AS size
       FROM ${jsonRows(d, '@digests')} WHERE EXISTS (SELECT 1 FROM manifests m WHERE m.repo = @repo AND m.digest = j.value)`,
  ),
  // The manifest and what it names directly, less what another manifest or a v1 image of the repository
  // still uses: what the repository stops holding once it is deleted and garbage collection has run.
  reclaim: sql<{ repoBytes: number; storeBytes: number }>(
    `SELECT coalesce(sum(b.size), 0) AS "repoBytes",
            coalesce(sum(CASE WHEN NOT EXISTS (SELECT 1 FROM repo_charges o WHERE o.digest = d.digest AND o.repo <> @repo) THEN b.size ELSE 0 END), 0) AS "storeBytes"
       FROM (SELECT CAST(@digest AS TEXT) AS digest UNION SELECT child FROM manifest_refs WHERE repo = @repo AND digest = @digest) d
       JOIN blobs b ON b.digest = d.digest
      WHERE NOT EXISTS (SELECT 1 FROM manifest_refs x WHERE x.repo = @repo AND x.child = d.digest AND x.digest <> @digest)
        AND NOT EXISTS (SELECT 1 FROM v1_images v WHERE v.repo = @repo AND v.json_digest = d.digest)
        AND NOT EXISTS (SELECT 1 FROM v1_images v WHERE v.repo = @repo AND v.layer_digest = d.digest)`,
  ),
  parentsOf: sql<Digest>('SELECT DISTINCT digest FROM manifest_refs WHERE repo = ? AND child = ? ORDER BY digest LIMIT 20', { pluck: true }),
  manifestTimes: sql<{ createdAt: number; pulledAt: number | null }>('SELECT created_at AS "createdAt", pulled_at AS "pulledAt" FROM manifests WHERE repo = ? AND digest = ?'),
  setDescription: sql('UPDATE repositories SET description = ? WHERE name = ?'),
  blobSizes: dsql<{ digest: string; size: number }>((d) => `SELECT j.value AS digest, b.size FROM ${jsonRows(d, '?')} JOIN blobs b ON b.digest = j.value`),
  v1Images: dsql<{ id: string; layerSize: number | null; createdAt: number; jsonDigest: Digest }>(
    (d) => `SELECT j.value AS id, i.layer_size AS "layerSize", i.created_at AS "createdAt", i.json_digest AS "jsonDigest"
       FROM ${jsonRows(d, '@ids')} JOIN v1_images i ON i.repo = @repo AND i.id = j.value`,
  ),
  totals: sql<{ repositories: number; blobs: number; bytes: number; uploads: number; uploadBytes: number; doomed: number }>(
    `SELECT (SELECT count(*) FROM repositories) AS repositories, (SELECT count(*) FROM blobs) AS blobs,
            (SELECT coalesce(sum(size), 0) FROM blobs) AS bytes, (SELECT count(*) FROM uploads) AS uploads,
            (SELECT coalesce(sum(size), 0) FROM uploads) AS "uploadBytes", (SELECT count(*) FROM gc_doomed) AS doomed`,
  ),
};

/** The parameters of range `r` (its end only if it has one: a statement with @to is chosen then). */
const rangeParams = (r: NameRange) => ({ from: r.from, like: r.like, regex: r.regex, ...(r.to === null ? {} : { to: r.to }) });

/** Names in byte order (repository names are ASCII: JavaScript's order is the databases'). */
const byteOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export class BrowseIndex extends IndexObject {
  constructor(db: Db | IndexDatabase) {
    super(databaseOf(db));
  }

  /**
   * One page of the repositories `visible` matches (and whose name or description contains `query`, on the
   * trigram index v1 search uses), in `sort` order (name ascending; last push and size descending, then
   * name), starting after `after`. One statement per range of names for the total and for the page (ranges
   * are few: one per access rule at most); they are separate reads, so a push between them can make the
   * total and the page disagree by that push, which a listing may.
   */
  async repositories(opts: { visible: readonly NamePattern[]; query?: string; sort: RepoSort; after?: RepoCursor; limit: number }): Promise<RepoPage> {
    const ranges = nameRanges(opts.visible);
    if (ranges.length === 0) return { rows: [], total: 0 };
    const q = opts.query ? '%' + opts.query.replace(/[\\%_]/g, (c) => '\\' + c) + '%' : null;
    const want = opts.limit + 1; // one more than a page: whether there is a next one
    let total = 0;
    for (const r of ranges) total += (await this.sql.get(r.to === null ? Q.countFrom : Q.countRange, { ...rangeParams(r), q }))!;
    let rows: RepoRow[] = [];
    if (opts.sort === 'name') {
      // Ranges are sorted and disjoint: their pages, in order, are the page.
      for (const r of ranges) {
        if (rows.length >= want) break;
        const start = opts.after ? rangeStart(r, opts.after.name) : r.from;
        if (start === undefined) continue; // the range is before the page
        const after = opts.after !== undefined && start === opts.after.name;
        const q1 = r.to === null ? (after ? Q.byNameFromAfter : Q.byNameFrom) : after ? Q.byNameRangeAfter : Q.byNameRange;
        rows.push(...(await this.sql.all(q1, { ...rangeParams(r), from: start, q, limit: want - rows.length })));
      }
    } else {
      // The page of each range, merged: the first `want` of all of them are among theirs.
      const [from, range] = opts.sort === 'pushed' ? [Q.byPushedFrom, Q.byPushedRange] : [Q.bySizeFrom, Q.bySizeRange];
      const keyOf = (row: RepoRow) => (opts.sort === 'pushed' ? row.pushedAt : row.bytes);
      const cursor = { afterName: opts.after?.name ?? null, afterKey: opts.after?.key ?? 0 };
      for (const r of ranges) rows.push(...(await this.sql.all(r.to === null ? from : range, { ...rangeParams(r), q, limit: want, ...cursor })));
      if (ranges.length > 1) rows = rows.sort((a, b) => keyOf(b) - keyOf(a) || byteOrder(a.name, b.name)).slice(0, want);
    }
    let next: RepoCursor | undefined;
    if (rows.length > opts.limit) {
      rows.length = opts.limit;
      const last = rows[rows.length - 1]!;
      next = { name: last.name, ...(opts.sort === 'name' ? {} : { key: opts.sort === 'pushed' ? last.pushedAt : last.bytes }) };
    }
    return { rows, total, next };
  }

  repository(name: string): Promise<RepoRow | undefined> {
    return this.sql.get(Q.repo, name);
  }

  /** v2 tags, newest first, with what the repository page shows (at most `limit`). */
  async tags(repo: string, limit: number): Promise<TagRow[]> {
    return (await this.sql.all(Q.tags, repo, limit)).map((r) => ({ ...r, pulledAt: r.pulledAt || null, bridged: r.bridged === 1 }));
  }

  v1Tags(repo: string, limit: number): Promise<V1TagRow[]> {
    return this.sql.all(Q.v1Tags, repo, limit);
  }

  /** Manifests no tag, index or subject reaches: what a push by digest left. */
  untagged(repo: string, limit: number): Promise<ManifestRow[]> {
    return this.sql.all(Q.untagged, repo, limit);
  }

  tagsOf(repo: string, digest: Digest): Promise<string[]> {
    return this.sql.all(Q.tagsOf, repo, digest);
  }

  /**
   * Bytes deleting manifest `digest` lets garbage collection take: out of the repository (`repoBytes`), and of
   * those, bytes no other repository holds, freed in storage (`storeBytes`). Children of an index count
   * when nothing else in the repository lists them (they stay as untagged manifests unless gc.untagged is delete).
   */
  async reclaimable(repo: string, digest: Digest): Promise<{ repoBytes: number; storeBytes: number }> {
    return (await this.sql.get(Q.reclaim, { repo, digest }))!;
  }

  /** For each manifest of `repo` among `digests`: the bytes of every distinct blob it reaches (itself included). */
  async totalSizes(repo: string, digests: readonly string[]): Promise<Map<string, number>> {
    const rows = await this.sql.all(Q.totalSizes, { repo, digests: JSON.stringify(digests) });
    return new Map(rows.map((r) => [r.digest, r.size]));
  }

  /** Indexes of this repository that list `digest` (so a child manifest links back to them). */
  parentsOf(repo: string, digest: Digest): Promise<Digest[]> {
    return this.sql.all(Q.parentsOf, repo, digest);
  }

  manifestTimes(repo: string, digest: Digest): Promise<{ createdAt: number; pulledAt: number | null } | undefined> {
    return this.sql.get(Q.manifestTimes, repo, digest);
  }

  /** Sizes of the blobs the store knows among `digests`. */
  async blobSizes(digests: readonly string[]): Promise<Map<string, number>> {
    const rows = await this.sql.all(Q.blobSizes, JSON.stringify(digests));
    return new Map(rows.map((r) => [r.digest, r.size]));
  }

  /** Layer sizes and push times of v1 images of `repo`. */
  async v1Images(repo: string, ids: readonly string[]): Promise<Map<string, { layerSize: number | null; createdAt: number; jsonDigest: Digest }>> {
    const rows = await this.sql.all(Q.v1Images, { repo, ids: JSON.stringify(ids) });
    return new Map(rows.map((r) => [r.id, r]));
  }

  /** Set the description (v1 metadata, searched by v1 search); false if there is no such repository. */
  setDescription(repo: string, description: string): Promise<boolean> {
    // In a transaction of its own, which holds the write lock from its start (SQLite: BEGIN IMMEDIATE), as
    // every write of the index does.
    return this.transaction(async (tx) => (await tx(this).sql.run(Q.setDescription, description, repo)).changes === 1);
  }

  /**
   * The `limit` repositories `visible` matches that use the most bytes (repo_usage, kept by triggers), with
   * the bytes they share with other repositories; and the count and bytes of all of them. One statement per
   * range of names for each, merged (separate reads, as in repositories()).
   */
  async usage(visible: readonly NamePattern[], limit: number): Promise<{ rows: UsageRow[]; repositories: number; bytes: number }> {
    const ranges = nameRanges(visible);
    let repositories = 0;
    let bytes = 0;
    let rows: Omit<UsageRow, 'uniqueBytes'>[] = [];
    for (const r of ranges) {
      const params = rangeParams(r);
      const sum = (await this.sql.get(r.to === null ? Q.usageSumFrom : Q.usageSumRange, params))!;
      repositories += sum.repositories;
      bytes += sum.bytes;
      rows.push(...(await this.sql.all(r.to === null ? Q.usageTopFrom : Q.usageTopRange, { ...params, limit })));
    }
    if (ranges.length > 1) rows = rows.sort((a, b) => b.bytes - a.bytes || byteOrder(a.repo, b.repo)).slice(0, limit);
    return { repositories, bytes, rows: rows.map((r) => ({ ...r, uniqueBytes: r.bytes - r.sharedBytes })) };
  }

  async totals(): Promise<{ repositories: number; blobs: number; bytes: number; uploads: number; uploadBytes: number; doomed: number }> {
    return (await this.sql.get(Q.totals))!;
  }
}
