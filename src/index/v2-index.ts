import type { Statement } from 'better-sqlite3';
import type { Db } from './db';
import type { MetadataIndex } from './metadata-index';
import { SqliteIndexObject } from './connection';
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
      AND (@like IS NULL OR name LIKE @like ESCAPE '\\') AND (@regex IS NULL OR name REGEXP @regex)
      AND (EXISTS (SELECT 1 FROM manifests m WHERE m.repo = r.name) OR EXISTS (SELECT 1 FROM repo_blobs b WHERE b.repo = r.name))
    ORDER BY name LIMIT @n`;

export class V2Index extends SqliteIndexObject {
  private readonly s;

  constructor(
    db: Db,
    private readonly core: MetadataIndex,
  ) {
    super(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      // A link made again is fresh again: garbage collection keeps links younger than gc.delay.
      linkBlob: p('INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET linked_at = excluded.linked_at'),
      touchLink: p('UPDATE repo_blobs SET linked_at = ? WHERE repo = ? AND digest = ? AND linked_at < ?'),
      // Set-based checks of a manifest's references (a JSON array of digests): one statement, not one per reference.
      missingBlobs: p(
        `SELECT DISTINCT j.value AS digest FROM json_each(@digests) j
          WHERE NOT EXISTS (SELECT 1 FROM repo_blobs b WHERE b.repo = @repo AND b.digest = j.value)
             OR NOT EXISTS (SELECT 1 FROM blobs WHERE digest = j.value)`,
      ),
      missingManifests: p(
        `SELECT DISTINCT j.value AS digest FROM json_each(@digests) j
          WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo = @repo AND m.digest = j.value)`,
      ),
      linkedAt: p('SELECT linked_at FROM repo_blobs WHERE repo = ? AND digest = ?').pluck(),
      unlinkBlob: p('DELETE FROM repo_blobs WHERE repo = ? AND digest = ?'),

      putManifest: p(
        `INSERT INTO manifests (${MANIFEST_COLUMNS}, created_at)
         VALUES (@repo, @digest, @mediaType, @size, @artifactType, @subject, @annotations, @now)
         ON CONFLICT (repo, digest) DO NOTHING`,
      ),
      addRef: p('INSERT INTO manifest_refs (repo, digest, child) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
      getManifest: p(`SELECT ${MANIFEST_COLUMNS} FROM manifests WHERE repo = ? AND digest = ?`),
      taggedManifest: p(
        `SELECT ${MANIFEST_COLUMNS.split(', ').map((c) => `m.${c}`).join(', ')}
           FROM tags t JOIN manifests m ON m.repo = t.repo AND m.digest = t.digest WHERE t.repo = ? AND t.tag = ?`,
      ),
      deleteManifest: p('DELETE FROM manifests WHERE repo = ? AND digest = ?'),
      deleteRefs: p('DELETE FROM manifest_refs WHERE repo = ? AND digest = ?'),
      deleteTagsOf: p('DELETE FROM tags WHERE repo = ? AND digest = ?'),
      referrers: p(`SELECT ${MANIFEST_COLUMNS} FROM manifests WHERE repo = ? AND subject = ? ORDER BY created_at, digest`),

      // A pushed tag (bridged NULL) always wins; a bridged one (from v1, docs/bridge.md) replaces only a bridged one.
      setTag: p(
        `INSERT INTO tags (repo, tag, digest, updated_at, bridged_from_v1) VALUES (@repo, @tag, @digest, @now, @bridged)
         ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at,
           bridged_from_v1 = excluded.bridged_from_v1
         WHERE excluded.bridged_from_v1 IS NULL OR tags.bridged_from_v1 IS NOT NULL`,
      ),
      resolveTag: p('SELECT digest FROM tags WHERE repo = ? AND tag = ?'),
      tagRow: p('SELECT digest, bridged_from_v1 FROM tags WHERE repo = ? AND tag = ?'),
      // One statement for the bridge's check before a pull by tag: the v2 tag, its mark, and the v1 tag of that name.
      tagAndV1Tag: p(
        `SELECT (SELECT digest FROM tags WHERE repo = @repo AND tag = @tag) AS digest,
                (SELECT bridged_from_v1 FROM tags WHERE repo = @repo AND tag = @tag) AS bridged,
                (SELECT image_id FROM v1_tags WHERE repo = @repo AND tag = @tag) AS v1`,
      ),
      deleteBridgedTag: p('DELETE FROM tags WHERE repo = ? AND tag = ? AND bridged_from_v1 IS NOT NULL'),
      deleteTag: p('DELETE FROM tags WHERE repo = ? AND tag = ?'),
      listTags: p('SELECT tag FROM tags WHERE repo = ? AND tag > ? ORDER BY tag LIMIT ?').pluck(),
      // One range of names (name-filter.ts): with and without an end, so that both bounds seek the index.
      catalogRange: p(catalogSql('AND name < @to')),
      catalogFrom: p(catalogSql('')),
    };
  }

  // ---- blob membership: a repository serves only blobs pushed or mounted into it ----

  linkBlob(repo: string, digest: Digest): Promise<void> {
    return this.transaction(async (tx) => {
      await tx(this.core).ensureRepository(repo);
      this.s.linkBlob.run(repo, digest, Date.now());
    });
  }

  /** Mark a link as just used, if it was last made or used before `staleBefore`. */
  touchLink(repo: string, digest: Digest, staleBefore: number): Promise<void> {
    return this.run(() => void this.s.touchLink.run(Date.now(), repo, digest, staleBefore));
  }

  isBlobLinked(repo: string, digest: Digest): Promise<boolean> {
    return this.run(() => this.s.linkedAt.get(repo, digest) !== undefined);
  }

  /** When the link was made or last used (ms), or undefined if the repository has no such link. */
  linkedAt(repo: string, digest: Digest): Promise<number | undefined> {
    return this.run(() => this.s.linkedAt.get(repo, digest) as number | undefined);
  }

  /** Those of `digests` this repository cannot serve (not linked, or not stored), in no particular order. */
  missingBlobs(repo: string, digests: readonly Digest[]): Promise<Set<Digest>> {
    return this.run(() => this.missing(this.s.missingBlobs, repo, digests));
  }

  /** Those of `digests` that are no manifest of this repository, in no particular order. */
  missingManifests(repo: string, digests: readonly Digest[]): Promise<Set<Digest>> {
    return this.run(() => this.missing(this.s.missingManifests, repo, digests));
  }

  private missing(stmt: Statement, repo: string, digests: readonly Digest[]): Set<Digest> {
    if (digests.length === 0) return new Set();
    const rows = stmt.all({ repo, digests: JSON.stringify([...new Set(digests)]) }) as { digest: Digest }[];
    return new Set(rows.map((r) => r.digest));
  }

  unlinkBlob(repo: string, digest: Digest): Promise<boolean> {
    return this.run(() => this.s.unlinkBlob.run(repo, digest).changes === 1);
  }

  // ---- manifests ----

  /** Record a manifest (idempotent), its references, and optionally a tag, in one transaction. */
  putManifest(rec: ManifestRecord, refs: Digest[], tag?: string, bridgedFromV1?: string): Promise<void> {
    return this.transaction(async (tx) => {
      await tx(this.core).ensureRepository(rec.repo);
      this.s.putManifest.run({
        ...rec,
        annotations: rec.annotations ? JSON.stringify(rec.annotations) : null,
        now: Date.now(),
      });
      this.s.linkBlob.run(rec.repo, rec.digest, Date.now());
      for (const child of refs) this.s.addRef.run(rec.repo, rec.digest, child);
      if (tag !== undefined) this.s.setTag.run({ repo: rec.repo, tag, digest: rec.digest, now: Date.now(), bridged: bridgedFromV1 ?? null });
    });
  }

  getManifest(repo: string, digest: Digest): Promise<ManifestRecord | undefined> {
    return this.run(() => {
      const row = this.s.getManifest.get(repo, digest) as ManifestRow | undefined;
      return row && fromRow(row);
    });
  }

  /** The manifest a tag points at, read in one statement: a tag moved meanwhile never yields its old, deleted manifest. */
  taggedManifest(repo: string, tag: string): Promise<ManifestRecord | undefined> {
    return this.run(() => {
      const row = this.s.taggedManifest.get(repo, tag) as ManifestRow | undefined;
      return row && fromRow(row);
    });
  }

  /** Delete a manifest and every tag pointing at it; false if it was not there. */
  deleteManifest(repo: string, digest: Digest): Promise<boolean> {
    return this.transaction(async () => {
      if (this.s.deleteManifest.run(repo, digest).changes === 0) return false;
      this.s.deleteRefs.run(repo, digest);
      this.s.deleteTagsOf.run(repo, digest);
      this.s.unlinkBlob.run(repo, digest);
      return true;
    });
  }

  referrers(repo: string, subject: Digest): Promise<ManifestRecord[]> {
    return this.run(() => (this.s.referrers.all(repo, subject) as ManifestRow[]).map(fromRow));
  }

  // ---- tags ----

  resolveTag(repo: string, tag: string): Promise<Digest | undefined> {
    return this.run(() => (this.s.resolveTag.get(repo, tag) as { digest: Digest } | undefined)?.digest);
  }

  /** A tag with the v1 image it was bridged from (null: pushed over v2). */
  tag(repo: string, tag: string): Promise<{ digest: Digest; bridgedFromV1: string | null } | undefined> {
    return this.run(() => {
      const r = this.s.tagRow.get(repo, tag) as { digest: Digest; bridged_from_v1: string | null } | undefined;
      return r && { digest: r.digest, bridgedFromV1: r.bridged_from_v1 };
    });
  }

  /** The v2 tag (with its mark) and the v1 image id the v1 tag of the same name points at, in one lookup. */
  tagAndV1Tag(repo: string, tag: string): Promise<{ digest: Digest | null; bridgedFromV1: string | null; v1ImageId: string | null }> {
    return this.run(() => {
      const r = this.s.tagAndV1Tag.get({ repo, tag }) as { digest: Digest | null; bridged: string | null; v1: string | null };
      return { digest: r.digest, bridgedFromV1: r.bridged, v1ImageId: r.v1 };
    });
  }

  /** Delete the tag if the bridge made it (a pushed one stays). */
  deleteBridgedTag(repo: string, tag: string): Promise<boolean> {
    return this.run(() => this.s.deleteBridgedTag.run(repo, tag).changes === 1);
  }

  deleteTag(repo: string, tag: string): Promise<boolean> {
    return this.run(() => this.s.deleteTag.run(repo, tag).changes === 1);
  }

  /** Tags in byte order after `last`, at most `n`. */
  listTags(repo: string, last: string, n: number): Promise<string[]> {
    return this.run(() => this.s.listTags.all(repo, last, n) as string[]);
  }

  /**
   * Repositories with v2 content that `visible` matches, in byte order after `last`, at most `n`:
   * one query per range of names, each stopping at what the page still needs.
   */
  catalog(last: string, n: number, visible: readonly NamePattern[] = ALL_NAMES): Promise<string[]> {
    return this.run(() => {
      const out: string[] = [];
      for (const range of nameRanges(visible)) {
        if (out.length >= n) break;
        const from = rangeStart(range, last);
        if (from === undefined) continue;
        const params = { from, last, regex: range.regex, like: range.like, n: n - out.length };
        const rows = (range.to === null ? this.s.catalogFrom.all(params) : this.s.catalogRange.all({ ...params, to: range.to })) as { name: string }[];
        for (const r of rows) out.push(r.name);
      }
      return out;
    });
  }
}
