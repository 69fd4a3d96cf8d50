import type { Statement } from 'better-sqlite3';
import type { Db } from './db';
import { nameRanges, type NamePattern } from './name-filter';
import type { MetadataIndex } from './metadata-index';
import { SqliteIndexObject } from './connection';
import type { Digest } from '../storage/digest';
import type { LayerFormat } from '../storage/layer-analyzer';

// The v1 protocol's part of the index: images (json + layer blobs, checksum, completeness),
// v1 tags and the index's per-repository image lists. Images are kept per repository: an image id is
// a name the client chose, so the same id in two repositories is two images (see docs/v1.md, v1 images).

/** Repositories of one range of names (name-filter.ts) with a row for image @id in `table`, along its (id, repo) index. */
const reposSql = (table: string, idColumn: string, extra: string, upperBound: string) =>
  `SELECT repo FROM ${table} WHERE ${idColumn} = @id ${extra} AND repo >= @from ${upperBound}
     AND (@like IS NULL OR repo LIKE @like ESCAPE '\\') AND (@regex IS NULL OR repo REGEXP @regex)
   ORDER BY repo LIMIT @n`;

export interface V1Image {
  repo: string;
  id: string;
  parent: string | null;
  jsonDigest: Digest;
  layerDigest: Digest | null;
  layerSize: number | null;
  checksum: string | null;
  complete: boolean;
  /** The bridge's view of the layer (migration 7): null until analyzed. */
  layerFormat: LayerFormat | null;
  /** sha256 of the uncompressed layer tar (gzip, tar and empty gzip layers). */
  diffId: Digest | null;
}

export interface V1ImageListEntry {
  id: string;
  checksum?: string;
}

export class V1Index extends SqliteIndexObject {
  private readonly s;

  constructor(
    db: Db,
    private readonly core: MetadataIndex,
  ) {
    super(db);
    const p = (sql: string) => db.prepare(sql);
    this.s = {
      setIndexed: p('UPDATE repositories SET v1_indexed = 1 WHERE name = ?'),
      getV1Image: p(
        'SELECT repo, id, parent, json_digest, layer_digest, layer_size, checksum, complete, layer_format, diff_id FROM v1_images WHERE repo = ? AND id = ?',
      ),
      putV1Json: p(
        `INSERT INTO v1_images (repo, id, parent, json_digest, created_at) VALUES (@repo, @id, @parent, @json, @now)
         ON CONFLICT (repo, id) DO UPDATE SET parent = @parent, json_digest = @json, layer_digest = NULL,
           layer_size = NULL, checksum = NULL, complete = 0, layer_format = NULL, diff_id = NULL
         WHERE complete = 0`,
      ),
      setV1Layer: p(
        'UPDATE v1_images SET layer_digest = ?, layer_size = ?, checksum = ?, layer_format = ?, diff_id = ? WHERE repo = ? AND id = ? AND complete = 0 AND json_digest = ?',
      ),
      // Analyzed later (images stored before the bridge): the same layer bytes, whichever image row holds them.
      setLayerInfo: p('UPDATE v1_images SET layer_format = ?, diff_id = ? WHERE layer_digest = ? AND layer_format IS NULL'),
      unanalyzed: p(
        `SELECT DISTINCT layer_digest FROM v1_images WHERE layer_format IS NULL AND layer_digest IS NOT NULL AND layer_digest > ?
          ORDER BY layer_digest LIMIT ?`,
      ).pluck(),
      countUnanalyzed: p('SELECT count(DISTINCT layer_digest) FROM v1_images WHERE layer_format IS NULL AND layer_digest IS NOT NULL').pluck(),
      completeV1: p('UPDATE v1_images SET complete = 1 WHERE repo = ? AND id = ? AND complete = 0 AND checksum = ?'),
      // A parent is complete before a child's JSON is accepted, so new chains have no cycles; the depth
      // bound (and the cut in ancestry()) guard chains written before that rule.
      ancestry: p(
        `WITH RECURSIVE chain(id, parent, depth) AS (
           SELECT id, parent, 0 FROM v1_images WHERE repo = @repo AND id = @id
           UNION ALL
           SELECT i.id, i.parent, c.depth + 1 FROM v1_images i JOIN chain c ON i.repo = @repo AND i.id = c.parent
            WHERE c.depth < 1000
         ) SELECT id FROM chain ORDER BY depth`,
      ),

      setV1Tag: p(
        `INSERT INTO v1_tags (repo, tag, image_id, meta) VALUES (?, ?, ?, ?)
         ON CONFLICT (repo, tag) DO UPDATE SET image_id = excluded.image_id, meta = excluded.meta`,
      ),
      getV1Tag: p('SELECT image_id, meta FROM v1_tags WHERE repo = ? AND tag = ?'),
      listV1Tags: p('SELECT tag, image_id FROM v1_tags WHERE repo = ? ORDER BY tag'),
      v1TagsAfter: p('SELECT repo, tag FROM v1_tags WHERE (repo, tag) > (?, ?) ORDER BY repo, tag LIMIT ?'),
      countV1Tags: p('SELECT count(*) FROM v1_tags').pluck(),
      deleteV1Tag: p('DELETE FROM v1_tags WHERE repo = ? AND tag = ?'),

      reposWithImageRange: p(reposSql('v1_images', 'id', 'AND complete = 1', 'AND repo < @to')),
      reposWithImageFrom: p(reposSql('v1_images', 'id', 'AND complete = 1', '')),
      reposListingImageRange: p(reposSql('v1_repo_images', 'image_id', '', 'AND repo < @to')),
      reposListingImageFrom: p(reposSql('v1_repo_images', 'image_id', '', '')),
      getRepoImages: p('SELECT image_id, checksum FROM v1_repo_images WHERE repo = ? ORDER BY position'),
      isV1Indexed: p('SELECT v1_indexed FROM repositories WHERE name = ?').pluck(),
      maxRepoImagePos: p('SELECT coalesce(max(position), -1) AS p FROM v1_repo_images WHERE repo = ?'),
      addRepoImage: p(
        `INSERT INTO v1_repo_images (repo, image_id, checksum, position) VALUES (?, ?, ?, ?)
         ON CONFLICT (repo, image_id) DO UPDATE SET checksum = coalesce(v1_repo_images.checksum, excluded.checksum)`,
      ),
    };
  }

  // ---- v1 images ----

  getV1Image(repo: string, id: string): Promise<V1Image | undefined> {
    return this.run(() => {
      const r = this.s.getV1Image.get(repo, id) as V1Row | undefined;
      return (
        r && {
          repo: r.repo,
          id: r.id,
          parent: r.parent,
          jsonDigest: r.json_digest,
          layerDigest: r.layer_digest,
          layerSize: r.layer_size,
          checksum: r.checksum,
          complete: r.complete === 1,
          layerFormat: r.layer_format,
          diffId: r.diff_id,
        }
      );
    });
  }

  /** Store (or replace, while in progress) an image's JSON; returns false if the image is already complete. */
  putV1ImageJson(repo: string, id: string, parent: string | null, jsonDigest: Digest): Promise<boolean> {
    return this.transaction(async (tx) => {
      await tx(this.core).ensureRepository(repo);
      return this.s.putV1Json.run({ repo, id, parent, json: jsonDigest, now: Date.now() }).changes === 1;
    });
  }

  /** Attach an uploaded layer; only to an in-progress image whose JSON is still the one the checksum covered. */
  setV1Layer(
    repo: string,
    id: string,
    jsonDigest: Digest,
    layerDigest: Digest,
    size: number,
    checksum: string,
    layer?: { format: LayerFormat; diffId: Digest | null },
  ): Promise<boolean> {
    return this.run(() => this.s.setV1Layer.run(layerDigest, size, checksum, layer?.format ?? null, layer?.diffId ?? null, repo, id, jsonDigest).changes === 1);
  }

  /** Record what a stored layer is, on every image row holding those bytes that does not know yet. */
  setLayerInfo(layerDigest: Digest, format: LayerFormat, diffId: Digest | null): Promise<void> {
    return this.run(() => void this.s.setLayerInfo.run(format, diffId, layerDigest));
  }

  /** Up to `n` layer blobs (after `after`, in digest order) that images hold without knowing what they are. */
  unanalyzedLayers(after: string, n: number): Promise<Digest[]> {
    return this.run(() => this.s.unanalyzed.all(after, n) as Digest[]);
  }

  countUnanalyzedLayers(): Promise<number> {
    return this.run(() => this.s.countUnanalyzed.get() as number);
  }

  /** Mark an image complete if its computed checksum is `checksum`. */
  completeV1Image(repo: string, id: string, checksum: string): Promise<boolean> {
    return this.run(() => this.s.completeV1.run(repo, id, checksum).changes === 1);
  }

  /** [id, parent, grandparent, ..., root] within the repository; empty if the image is unknown. */
  ancestry(repo: string, id: string): Promise<string[]> {
    return this.run(() => {
      const chain: string[] = [];
      for (const r of this.s.ancestry.all({ repo, id }) as { id: string }[]) {
        if (chain.includes(r.id)) break; // a cycle left by an older version: the chain ends where it repeats
        chain.push(r.id);
      }
      return chain;
    });
  }

  // ---- v1 tags ----

  setV1Tag(repo: string, tag: string, imageId: string, meta: string): Promise<void> {
    return this.transaction(async (tx) => {
      await tx(this.core).ensureRepository(repo);
      this.s.setV1Tag.run(repo, tag, imageId, meta);
    });
  }

  getV1Tag(repo: string, tag: string): Promise<{ imageId: string; meta: string } | undefined> {
    return this.run(() => {
      const r = this.s.getV1Tag.get(repo, tag) as { image_id: string; meta: string } | undefined;
      return r && { imageId: r.image_id, meta: r.meta };
    });
  }

  listV1Tags(repo: string): Promise<Record<string, string>> {
    return this.run(() => {
      // fromEntries defines properties: a tag named __proto__ is listed, not taken for the prototype.
      return Object.fromEntries((this.s.listV1Tags.all(repo) as { tag: string; image_id: string }[]).map((r) => [r.tag, r.image_id]));
    });
  }

  /** Up to `n` v1 tags of every repository after (repo, tag), in that order (the bridge's backfill walks them). */
  v1TagsAfter(repo: string, tag: string, n: number): Promise<{ repo: string; tag: string }[]> {
    return this.run(() => this.s.v1TagsAfter.all(repo, tag, n) as { repo: string; tag: string }[]);
  }

  countV1Tags(): Promise<number> {
    return this.run(() => this.s.countV1Tags.get() as number);
  }

  deleteV1Tag(repo: string, tag: string): Promise<boolean> {
    return this.run(() => this.s.deleteV1Tag.run(repo, tag).changes === 1);
  }

  // ---- v1 index image lists ----

  /** Merge an image list into the repository's (keeping order of first sight and any known checksum). */
  mergeV1RepoImages(repo: string, images: V1ImageListEntry[]): Promise<void> {
    return this.transaction(async (tx) => {
      await tx(this.core).ensureRepository(repo);
      this.s.setIndexed.run(repo);
      let pos = (this.s.maxRepoImagePos.get(repo) as { p: number }).p;
      for (const img of images) this.s.addRepoImage.run(repo, img.id, img.checksum ?? null, ++pos);
    });
  }

  /**
   * Up to `n` repositories among `visible` holding a complete image with this id, by name (v1 image URLs
   * carry no repository). Filtered in the query, so other tenants' repositories cost nothing.
   */
  reposWithImage(id: string, visible: readonly NamePattern[], n: number): Promise<string[]> {
    return this.run(() => this.reposOf(this.s.reposWithImageRange, this.s.reposWithImageFrom, id, visible, n));
  }

  /** Up to `n` repositories among `visible` whose image list names this image, by name. */
  reposListingImage(id: string, visible: readonly NamePattern[], n: number): Promise<string[]> {
    return this.run(() => this.reposOf(this.s.reposListingImageRange, this.s.reposListingImageFrom, id, visible, n));
  }

  private reposOf(range: Statement, from: Statement, id: string, visible: readonly NamePattern[], n: number): string[] {
    const out: string[] = [];
    for (const r of nameRanges(visible)) {
      if (out.length >= n) break;
      const params = { id, from: r.from, regex: r.regex, like: r.like, n: n - out.length };
      const rows = (r.to === null ? from.all(params) : range.all({ ...params, to: r.to })) as { repo: string }[];
      for (const row of rows) out.push(row.repo);
    }
    return out;
  }

  /** The repository's image list, or undefined if it was never announced through the index. */
  getV1RepoImages(repo: string): Promise<V1ImageListEntry[] | undefined> {
    // One read: a repository deleted meanwhile is either listed whole or unknown, never an empty list.
    return this.run(() => {
      if (!this.s.isV1Indexed.get(repo)) return undefined;
      return (this.s.getRepoImages.all(repo) as { image_id: string; checksum: string | null }[]).map((r) =>
        r.checksum ? { id: r.image_id, checksum: r.checksum } : { id: r.image_id },
      );
    });
  }
}

interface V1Row {
  repo: string;
  id: string;
  parent: string | null;
  json_digest: Digest;
  layer_digest: Digest | null;
  layer_size: number | null;
  checksum: string | null;
  complete: number;
  layer_format: LayerFormat | null;
  diff_id: Digest | null;
}
