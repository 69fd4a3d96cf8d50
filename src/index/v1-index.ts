import type { Db } from './db';
import { nameRanges, type NamePattern } from './name-filter';
import type { MetadataIndex } from './metadata-index';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase } from './database';
import { sql, type Query } from './sql';
import type { Digest } from '../storage/digest';
import type { LayerFormat } from '../storage/layer-analyzer';

// The v1 protocol's part of the index: images (json + layer blobs, checksum, completeness),
// v1 tags and the index's per-repository image lists. Images are kept per repository: an image id is
// a name the client chose, so the same id in two repositories is two images (see docs/v1.md, v1 images).

/** Repositories of one range of names (name-filter.ts) with a row for image @id in `table`, along its (id, repo) index. */
const reposSql = (table: string, idColumn: string, extra: string, upperBound: string) =>
  `SELECT repo FROM ${table} WHERE ${idColumn} = @id ${extra} AND repo >= @from ${upperBound}
     AND (CAST(@like AS TEXT) IS NULL OR repo LIKE @like ESCAPE '\\') AND (CAST(@regex AS TEXT) IS NULL OR repo REGEXP @regex)
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

const Q = {
  setIndexed: sql('UPDATE repositories SET v1_indexed = 1 WHERE name = ?'),
  getV1Image: sql<V1Row>(
    'SELECT repo, id, parent, json_digest, layer_digest, layer_size, checksum, complete, layer_format, diff_id FROM v1_images WHERE repo = ? AND id = ?',
  ),
  // The WHERE names the existing row (v1_images.): PostgreSQL would not know it from `excluded`'s otherwise.
  putV1Json: sql(
    `INSERT INTO v1_images (repo, id, parent, json_digest, created_at) VALUES (@repo, @id, @parent, @json, @now)
     ON CONFLICT (repo, id) DO UPDATE SET parent = @parent, json_digest = @json, layer_digest = NULL,
       layer_size = NULL, checksum = NULL, complete = 0, layer_format = NULL, diff_id = NULL
     WHERE v1_images.complete = 0`,
  ),
  setV1Layer: sql(
    'UPDATE v1_images SET layer_digest = ?, layer_size = ?, checksum = ?, layer_format = ?, diff_id = ? WHERE repo = ? AND id = ? AND complete = 0 AND json_digest = ?',
  ),
  // Analyzed later (images stored before the bridge): the same layer bytes, whichever image row holds them.
  setLayerInfo: sql('UPDATE v1_images SET layer_format = ?, diff_id = ? WHERE layer_digest = ? AND layer_format IS NULL'),
  unanalyzed: sql<Digest>(
    `SELECT DISTINCT layer_digest FROM v1_images WHERE layer_format IS NULL AND layer_digest IS NOT NULL AND layer_digest > ?
      ORDER BY layer_digest LIMIT ?`,
    { pluck: true },
  ),
  countUnanalyzed: sql<number>('SELECT count(DISTINCT layer_digest) FROM v1_images WHERE layer_format IS NULL AND layer_digest IS NOT NULL', { pluck: true }),
  completeV1: sql('UPDATE v1_images SET complete = 1 WHERE repo = ? AND id = ? AND complete = 0 AND checksum = ?'),
  // A parent is complete before a child's JSON is accepted, so new chains have no cycles; the depth
  // bound (and the cut in ancestry()) guard chains written before that rule.
  ancestry: sql<{ id: string }>(
    `WITH RECURSIVE chain(id, parent, depth) AS (
       SELECT id, parent, 0 FROM v1_images WHERE repo = @repo AND id = @id
       UNION ALL
       SELECT i.id, i.parent, c.depth + 1 FROM v1_images i JOIN chain c ON i.repo = @repo AND i.id = c.parent
        WHERE c.depth < 1000
     ) SELECT id FROM chain ORDER BY depth`,
  ),

  setV1Tag: sql(
    `INSERT INTO v1_tags (repo, tag, image_id, meta) VALUES (?, ?, ?, ?)
     ON CONFLICT (repo, tag) DO UPDATE SET image_id = excluded.image_id, meta = excluded.meta`,
  ),
  getV1Tag: sql<{ image_id: string; meta: string }>('SELECT image_id, meta FROM v1_tags WHERE repo = ? AND tag = ?'),
  listV1Tags: sql<{ tag: string; image_id: string }>('SELECT tag, image_id FROM v1_tags WHERE repo = ? ORDER BY tag'),
  v1TagsAfter: sql<{ repo: string; tag: string }>('SELECT repo, tag FROM v1_tags WHERE (repo, tag) > (?, ?) ORDER BY repo, tag LIMIT ?'),
  countV1Tags: sql<number>('SELECT count(*) FROM v1_tags', { pluck: true }),
  deleteV1Tag: sql('DELETE FROM v1_tags WHERE repo = ? AND tag = ?'),

  reposWithImageRange: sql<{ repo: string }>(reposSql('v1_images', 'id', 'AND complete = 1', 'AND repo < @to')),
  reposWithImageFrom: sql<{ repo: string }>(reposSql('v1_images', 'id', 'AND complete = 1', '')),
  reposListingImageRange: sql<{ repo: string }>(reposSql('v1_repo_images', 'image_id', '', 'AND repo < @to')),
  reposListingImageFrom: sql<{ repo: string }>(reposSql('v1_repo_images', 'image_id', '', '')),
  // One read: the flag and the list of one state (a repository deleted meanwhile is listed whole or unknown,
  // never an empty list). A repository without images gives one row with a NULL image_id.
  repoImages: sql<{ v1_indexed: number; image_id: string | null; checksum: string | null }>(
    `SELECT r.v1_indexed, i.image_id, i.checksum FROM repositories r LEFT JOIN v1_repo_images i ON i.repo = r.name
      WHERE r.name = ? ORDER BY i.position`,
  ),
  maxRepoImagePos: sql<number>('SELECT coalesce(max(position), -1) FROM v1_repo_images WHERE repo = ?', { pluck: true }),
  addRepoImage: sql(
    `INSERT INTO v1_repo_images (repo, image_id, checksum, position) VALUES (?, ?, ?, ?)
     ON CONFLICT (repo, image_id) DO UPDATE SET checksum = coalesce(v1_repo_images.checksum, excluded.checksum)`,
  ),
};

export class V1Index extends IndexObject {
  constructor(
    db: Db | IndexDatabase,
    private readonly core: MetadataIndex,
  ) {
    super(databaseOf(db));
  }

  // ---- v1 images ----

  async getV1Image(repo: string, id: string): Promise<V1Image | undefined> {
    const r = await this.sql.get(Q.getV1Image, repo, id);
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
  }

  /** Store (or replace, while in progress) an image's JSON; returns false if the image is already complete. */
  putV1ImageJson(repo: string, id: string, parent: string | null, jsonDigest: Digest): Promise<boolean> {
    return this.transaction(async (tx) => {
      await tx(this.core).ensureRepository(repo);
      return (await tx(this).sql.run(Q.putV1Json, { repo, id, parent, json: jsonDigest, now: Date.now() })).changes === 1;
    });
  }

  /** Attach an uploaded layer; only to an in-progress image whose JSON is still the one the checksum covered. */
  async setV1Layer(
    repo: string,
    id: string,
    jsonDigest: Digest,
    layerDigest: Digest,
    size: number,
    checksum: string,
    layer?: { format: LayerFormat; diffId: Digest | null },
  ): Promise<boolean> {
    const r = await this.sql.run(Q.setV1Layer, layerDigest, size, checksum, layer?.format ?? null, layer?.diffId ?? null, repo, id, jsonDigest);
    return r.changes === 1;
  }

  /** Record what a stored layer is, on every image row holding those bytes that does not know yet. */
  async setLayerInfo(layerDigest: Digest, format: LayerFormat, diffId: Digest | null): Promise<void> {
    await this.sql.run(Q.setLayerInfo, format, diffId, layerDigest);
  }

  /** Up to `n` layer blobs (after `after`, in digest order) that images hold without knowing what they are. */
  unanalyzedLayers(after: string, n: number): Promise<Digest[]> {
    return this.sql.all(Q.unanalyzed, after, n);
  }

  async countUnanalyzedLayers(): Promise<number> {
    return (await this.sql.get(Q.countUnanalyzed))!;
  }

  /** Mark an image complete if its computed checksum is `checksum`. */
  async completeV1Image(repo: string, id: string, checksum: string): Promise<boolean> {
    return (await this.sql.run(Q.completeV1, repo, id, checksum)).changes === 1;
  }

  /** [id, parent, grandparent, ..., root] within the repository; empty if the image is unknown. */
  async ancestry(repo: string, id: string): Promise<string[]> {
    const chain: string[] = [];
    for (const r of await this.sql.all(Q.ancestry, { repo, id })) {
      if (chain.includes(r.id)) break; // a cycle left by an older version: the chain ends where it repeats
      chain.push(r.id);
    }
    return chain;
  }

  // ---- v1 tags ----

  setV1Tag(repo: string, tag: string, imageId: string, meta: string): Promise<void> {
    return this.transaction(async (tx) => {
      await tx(this.core).ensureRepository(repo);
      await tx(this).sql.run(Q.setV1Tag, repo, tag, imageId, meta);
    });
  }

  async getV1Tag(repo: string, tag: string): Promise<{ imageId: string; meta: string } | undefined> {
    const r = await this.sql.get(Q.getV1Tag, repo, tag);
    return r && { imageId: r.image_id, meta: r.meta };
  }

  async listV1Tags(repo: string): Promise<Record<string, string>> {
    // fromEntries defines properties: a tag named __proto__ is listed, not taken for the prototype.
    return Object.fromEntries((await this.sql.all(Q.listV1Tags, repo)).map((r) => [r.tag, r.image_id]));
  }

  /** Up to `n` v1 tags of every repository after (repo, tag), in that order (the bridge's backfill walks them). */
  v1TagsAfter(repo: string, tag: string, n: number): Promise<{ repo: string; tag: string }[]> {
    return this.sql.all(Q.v1TagsAfter, repo, tag, n);
  }

  async countV1Tags(): Promise<number> {
    return (await this.sql.get(Q.countV1Tags))!;
  }

  async deleteV1Tag(repo: string, tag: string): Promise<boolean> {
    return (await this.sql.run(Q.deleteV1Tag, repo, tag)).changes === 1;
  }

  // ---- v1 index image lists ----

  /** Merge an image list into the repository's (keeping order of first sight and any known checksum). */
  mergeV1RepoImages(repo: string, images: V1ImageListEntry[]): Promise<void> {
    // One transaction: the positions read and the rows added are one state (no other merge interleaves).
    // One INSERT per image, not one for the list: PostgreSQL refuses an upsert touching a row twice (a repeated id).
    return this.transaction(async (tx) => {
      const self = tx(this);
      await tx(this.core).ensureRepository(repo);
      await self.sql.run(Q.setIndexed, repo);
      let pos = (await self.sql.get(Q.maxRepoImagePos, repo))!;
      for (const img of images) await self.sql.run(Q.addRepoImage, repo, img.id, img.checksum ?? null, ++pos);
    });
  }

  /**
   * Up to `n` repositories among `visible` holding a complete image with this id, by name (v1 image URLs
   * carry no repository). Filtered in the query, so other tenants' repositories cost nothing.
   */
  reposWithImage(id: string, visible: readonly NamePattern[], n: number): Promise<string[]> {
    return this.reposOf(Q.reposWithImageRange, Q.reposWithImageFrom, id, visible, n);
  }

  /** Up to `n` repositories among `visible` whose image list names this image, by name. */
  reposListingImage(id: string, visible: readonly NamePattern[], n: number): Promise<string[]> {
    return this.reposOf(Q.reposListingImageRange, Q.reposListingImageFrom, id, visible, n);
  }

  private async reposOf(range: Query<{ repo: string }>, from: Query<{ repo: string }>, id: string, visible: readonly NamePattern[], n: number): Promise<string[]> {
    const out: string[] = [];
    for (const r of nameRanges(visible)) {
      if (out.length >= n) break;
      const params = { id, from: r.from, regex: r.regex, like: r.like, n: n - out.length };
      const rows = await (r.to === null ? this.sql.all(from, params) : this.sql.all(range, { ...params, to: r.to }));
      for (const row of rows) out.push(row.repo);
    }
    return out;
  }

  /** The repository's image list, or undefined if it was never announced through the index. */
  async getV1RepoImages(repo: string): Promise<V1ImageListEntry[] | undefined> {
    const rows = await this.sql.all(Q.repoImages, repo);
    if (rows.length === 0 || !rows[0]!.v1_indexed) return undefined;
    return rows.flatMap((r) => (r.image_id === null ? [] : [r.checksum ? { id: r.image_id, checksum: r.checksum } : { id: r.image_id }]));
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
