import type { Db } from './db';
import type { MetadataIndex } from './metadata-index';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase } from './database';
import { sql, type Query } from './sql';
import { jsonRows, sqlWith } from './json-list';
import { ALL_NAMES, nameRanges, rangeStart, type NamePattern } from './name-filter';
import type { Digest } from '../storage/digest';

// The v2 / OCI part of the index: which blobs a repository may serve, its manifests
// (with what referrers need), and its tags. v1 tags live apart (v1-index.ts): the two
// protocols name different things (image ids vs manifest digests).

export interface ManifestRecord {
  repo: string;
  digest: Digest;
  mediaType: string;
  size: number;
  artifactType: string | null;
  subject: Digest | null;
  annotations: Record<string, string> | null;
}

interface ManifestRow {
  repo: string;
  digest: Digest;
  media_type: string;
  size: number;
  artifact_type: string | null;
  subject: Digest | null;
  annotations: string | null;
}

const fromRow = (r: ManifestRow): ManifestRecord => ({
  repo: r.repo,
  digest: r.digest,
  mediaType: r.media_type,
  size: r.size,
  artifactType: r.artifact_type,
  subject: r.subject,
  annotations: r.annotations ? JSON.parse(r.annotations) : null,
});

const MANIFEST_COLUMNS = 'repo, digest, media_type, size, artifact_type, subject, annotations';

const catalogSql = (upperBound: string) =>
  `SELECT name FROM repositories r
    WHERE name >= @from ${upperBound} AND name <> @last
      AND (CAST(@like AS TEXT) IS NULL OR name LIKE @like ESCAPE '\\') AND (CAST(@regex AS TEXT) IS NULL OR name REGEXP @regex)
      AND (EXISTS (SELECT 1 FROM manifests m WHERE m.repo = r.name) OR EXISTS (SELECT 1 FROM repo_blobs b WHERE b.repo = r.name))
    ORDER BY name LIMIT @n`;

// Set-based checks of a manifest's references (a JSON array of distinct digests): one statement, not one per
// reference. A scalar subquery per reference, two key lookups: PostgreSQL made NOT EXISTS under OR a hashed
// subplan that read every link of the repository.
const missingBlobsSql = (from: string) =>
  `SELECT j.value AS digest FROM ${from}
    WHERE (SELECT 1 FROM repo_blobs b JOIN blobs s ON s.digest = b.digest WHERE b.repo = @repo AND b.digest = j.value) IS NULL`;
const missingManifestsSql = (from: string) =>
  `SELECT j.value AS digest FROM ${from}
    WHERE (SELECT 1 FROM manifests m WHERE m.repo = @repo AND m.digest = j.value) IS NULL`;

const Q = {
  // A link made again is fresh again: garbage collection keeps links younger than gc.delay.
  linkBlob: sql(
    'INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?) ON CONFLICT (repo, digest) DO UPDATE SET linked_at = excluded.linked_at',
  ),
  touchLink: sql('UPDATE repo_blobs SET linked_at = ? WHERE repo = ? AND digest = ? AND linked_at < ?'),
  missingBlobs: sqlWith<{ digest: Digest }>(jsonRows('digests'), missingBlobsSql),
  missingManifests: sqlWith<{ digest: Digest }>(jsonRows('digests'), missingManifestsSql),
  linkedAt: sql<number>('SELECT linked_at FROM repo_blobs WHERE repo = ? AND digest = ?', { pluck: true }),
  unlinkBlob: sql('DELETE FROM repo_blobs WHERE repo = ? AND digest = ?'),

  putManifest: sql(
    `INSERT INTO manifests (${MANIFEST_COLUMNS}, created_at)
     VALUES (@repo, @digest, @mediaType, @size, @artifactType, @subject, @annotations, @now)
     ON CONFLICT (repo, digest) DO NOTHING`,
  ),
  // WHERE true: SQLite's parser needs it between INSERT ... SELECT and ON CONFLICT.
  addRefs: sqlWith(
    jsonRows('children'),
    (children) => `INSERT INTO manifest_refs (repo, digest, child) SELECT @repo, @digest, j.value FROM ${children} WHERE true ON CONFLICT DO NOTHING`,
  ),
  // The reads of a manifest GET may be answered from memory (sql.ts, Query.cached).
  getManifest: sql<ManifestRow>(`SELECT ${MANIFEST_COLUMNS} FROM manifests WHERE repo = ? AND digest = ?`, { cached: true }),
  taggedManifest: sql<ManifestRow>(
    `SELECT ${MANIFEST_COLUMNS.split(', ').map((c) => `m.${c}`).join(', ')}
       FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest WHERE t.repo = ? AND t.tag = ?`,
    { cached: true },
  ),
  deleteManifest: sql('DELETE FROM manifests WHERE repo = ? AND digest = ?'),
  deleteRefs: sql('DELETE FROM manifest_refs WHERE repo = ? AND digest = ?'),
  deleteTagsOf: sql('DELETE FROM tags WHERE repo = ? AND digest = ?'),
  referrers: sql<ManifestRow>(`SELECT ${MANIFEST_COLUMNS} FROM manifests WHERE repo = ? AND subject = ? ORDER BY created_at, digest`),

  // A pushed tag (bridged NULL) always wins; a bridged one (from v1, docs/bridge.md) replaces only a bridged one.
  setTag: sql(
    `INSERT INTO tags (repo, tag, digest, updated_at, bridged_from_v1) VALUES (@repo, @tag, @digest, @now, @bridged)
     ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at,
       bridged_from_v1 = excluded.bridged_from_v1
     WHERE excluded.bridged_from_v1 IS NULL OR tags.bridged_from_v1 IS NOT NULL`,
  ),
  resolveTag: sql<Digest>('SELECT digest FROM tags WHERE repo = ? AND tag = ?', { pluck: true }),
  tagRow: sql<{ digest: Digest; bridged_from_v1: string | null }>('SELECT digest, bridged_from_v1 FROM tags WHERE repo = ? AND tag = ?'),
  // A pull by tag with the bridge on, in one statement (one round trip to PostgreSQL): the v2 tag, its mark, the
  // v1 tag of that name (whether the bridge must act first), and the manifest the tag names (if it need not).
  tagForPull: sql<Partial<ManifestRow> & { tag_digest: Digest | null; bridged: string | null; v1: string | null }>(
    `SELECT t.digest AS tag_digest, t.bridged_from_v1 AS bridged,
            (SELECT image_id FROM v1_tags WHERE repo = @repo AND tag = @tag) AS v1,
            ${MANIFEST_COLUMNS.split(', ').map((c) => `m.${c}`).join(', ')}
       FROM (SELECT 1 AS one) AS one
       LEFT JOIN tags t ON t.repo = @repo AND t.tag = @tag
       LEFT JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest`,
    { cached: true },
  ),
  deleteBridgedTag: sql('DELETE FROM tags WHERE repo = ? AND tag = ? AND bridged_from_v1 IS NOT NULL'),
  deleteTag: sql('DELETE FROM tags WHERE repo = ? AND tag = ?'),
  listTags: sql<string>('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?', { pluck: true, cached: true }),
  // One range of names (name-filter.ts): with and without an end, so that both bounds seek the index.
  catalogRange: sql<string>(catalogSql('AND name < @to'), { pluck: true }),
  catalogFrom: sql<string>(catalogSql(''), { pluck: true }),
};

export class V2Index extends IndexObject {
  constructor(
    db: Db | IndexDatabase,
    private readonly core: MetadataIndex,
  ) {
    super(databaseOf(db));
  }

  // ---- blob membership: a repository serves only blobs pushed or mounted into it ----

  linkBlob(repo: string, digest: Digest): Promise<void> {
    return this.atomically(async (tx) => {
      await tx(this.core).ensureRepository(repo);
      await tx(this).sql.run(Q.linkBlob, repo, digest, Date.now());
    });
  }

  /** Mark a link as just used, if it was last made or used before `staleBefore`. */
  async touchLink(repo: string, digest: Digest, staleBefore: number): Promise<void> {
    await this.sql.run(Q.touchLink, Date.now(), repo, digest, staleBefore);
  }

  async isBlobLinked(repo: string, digest: Digest): Promise<boolean> {
    return (await this.sql.get(Q.linkedAt, repo, digest)) !== undefined;
  }

  /** When the link was made or last used (ms), or undefined if the repository has no such link. */
  linkedAt(repo: string, digest: Digest): Promise<number | undefined> {
    return this.sql.get(Q.linkedAt, repo, digest);
  }

  /** Those of `digests` this repository cannot serve (not linked, or not stored), in no particular order. */
  missingBlobs(repo: string, digests: readonly Digest[]): Promise<Set<Digest>> {
    return this.missing(Q.missingBlobs, repo, digests);
  }

  /** Those of `digests` that are no manifest of this repository, in no particular order. */
  missingManifests(repo: string, digests: readonly Digest[]): Promise<Set<Digest>> {
    return this.missing(Q.missingManifests, repo, digests);
  }

  private async missing(q: Query<{ digest: Digest }>, repo: string, digests: readonly Digest[]): Promise<Set<Digest>> {
    if (digests.length === 0) return new Set();
    const rows = await this.sql.all(q, { repo, digests: JSON.stringify([...new Set(digests)]) });
    return new Set(rows.map((r) => r.digest));
  }

  async unlinkBlob(repo: string, digest: Digest): Promise<boolean> {
    return (await this.sql.run(Q.unlinkBlob, repo, digest)).changes === 1;
  }

  // ---- manifests ----

  /** Record a manifest (idempotent), its references, and optionally a tag, in one transaction. */
  putManifest(rec: ManifestRecord, refs: Digest[], tag?: string, bridgedFromV1?: string): Promise<void> {
    return this.transaction(async (tx) => {
      await tx(this.core).ensureRepository(rec.repo);
      const s = tx(this).sql;
      const now = Date.now();
      await s.run(Q.putManifest, { ...rec, annotations: rec.annotations ? JSON.stringify(rec.annotations) : null, now });
      await s.run(Q.linkBlob, rec.repo, rec.digest, now);
      if (refs.length > 0) await s.run(Q.addRefs, { repo: rec.repo, digest: rec.digest, children: JSON.stringify(refs) });
      if (tag !== undefined) await s.run(Q.setTag, { repo: rec.repo, tag, digest: rec.digest, now, bridged: bridgedFromV1 ?? null });
    });
  }

  async getManifest(repo: string, digest: Digest): Promise<ManifestRecord | undefined> {
    const row = await this.sql.get(Q.getManifest, repo, digest);
    return row && fromRow(row);
  }

  /** The manifest a tag points at, read in one statement: a tag moved meanwhile never yields its old, deleted manifest. */
  async taggedManifest(repo: string, tag: string): Promise<ManifestRecord | undefined> {
    const row = await this.sql.get(Q.taggedManifest, repo, tag);
    return row && fromRow(row);
  }

  /** Delete a manifest and every tag pointing at it; false if it was not there. */
  deleteManifest(repo: string, digest: Digest): Promise<boolean> {
    return this.transaction(async (tx) => {
      const s = tx(this).sql;
      if ((await s.run(Q.deleteManifest, repo, digest)).changes === 0) return false;
      await s.run(Q.deleteRefs, repo, digest);
      await s.run(Q.deleteTagsOf, repo, digest);
      await s.run(Q.unlinkBlob, repo, digest);
      return true;
    });
  }

  async referrers(repo: string, subject: Digest): Promise<ManifestRecord[]> {
    return (await this.sql.all(Q.referrers, repo, subject)).map(fromRow);
  }

  // ---- tags ----

  resolveTag(repo: string, tag: string): Promise<Digest | undefined> {
    return this.sql.get(Q.resolveTag, repo, tag);
  }

  /** A tag with the v1 image it was bridged from (null: pushed over v2). */
  async tag(repo: string, tag: string): Promise<{ digest: Digest; bridgedFromV1: string | null } | undefined> {
    const r = await this.sql.get(Q.tagRow, repo, tag);
    return r && { digest: r.digest, bridgedFromV1: r.bridged_from_v1 };
  }

  /**
   * The v2 tag (with its mark), the v1 image id the v1 tag of the same name points at, and the manifest the v2
   * tag names, in one read.
   */
  async tagForPull(
    repo: string,
    tag: string,
  ): Promise<{ digest: Digest | null; bridgedFromV1: string | null; v1ImageId: string | null; manifest: ManifestRecord | undefined }> {
    const r = (await this.sql.get(Q.tagForPull, { repo, tag }))!;
    const manifest = r.digest ? fromRow(r as ManifestRow) : undefined;
    return { digest: r.tag_digest, bridgedFromV1: r.bridged, v1ImageId: r.v1, manifest };
  }

  /** Delete the tag if the bridge made it (a pushed one stays). */
  async deleteBridgedTag(repo: string, tag: string): Promise<boolean> {
    return (await this.sql.run(Q.deleteBridgedTag, repo, tag)).changes === 1;
  }

  async deleteTag(repo: string, tag: string): Promise<boolean> {
    return (await this.sql.run(Q.deleteTag, repo, tag)).changes === 1;
  }

  /** Tags in byte order after `last`, at most `n` (may be shared: read-cache.ts). */
  listTags(repo: string, last: string, n: number): Promise<readonly string[]> {
    return this.sql.all(Q.listTags, repo, last, n);
  }

  /**
   * Repositories with v2 content that `visible` matches, in byte order after `last`, at most `n`:
   * one query per range of names, each stopping at what the page still needs. The ranges are read one
   * after the other, not as one snapshot (a listing page may see a repository created meanwhile).
   */
  async catalog(last: string, n: number, visible: readonly NamePattern[] = ALL_NAMES): Promise<string[]> {
    const out: string[] = [];
    for (const range of nameRanges(visible)) {
      if (out.length >= n) break;
      const from = rangeStart(range, last);
      if (from === undefined) continue;
      const params = { from, last, regex: range.regex, like: range.like, n: n - out.length };
      out.push(...(await (range.to === null ? this.sql.all(Q.catalogFrom, params) : this.sql.all(Q.catalogRange, { ...params, to: range.to }))));
    }
    return out;
  }
}
