import type { Db } from './db';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase } from './database';
import { nameRanges, type NamePattern } from './name-filter';
import { sql } from './sql';
import type { Digest } from '../storage/digest';

// What the v2 -> v1 bridge (src/bridge/v2-to-v1.ts, docs/bridge.md) reads and keeps: the v2 tags v1 clients
// see, and the v1 images made from their manifests (v1_bridged, v1_bridged_images, migration 7). A made image
// counts only while its manifest is still in the repository.

/** A v1 image made from a manifest: its JSON is made, not stored as a blob. */
export interface BridgedImageRecord {
  repo: string;
  id: string;
  parent: string | null;
  /** The (platform) manifest it was made from. */
  manifest: Digest;
  json: string;
  layerDigest: Digest;
  layerSize: number;
}

interface ImageRow {
  repo: string;
  id: string;
  parent: string | null;
  manifest: Digest;
  json: string;
  layer_digest: Digest;
  layer_size: number;
}

const LIVE = 'EXISTS (SELECT 1 FROM manifests m WHERE m.repo = b.repo AND m.digest = b.manifest)';
const reposSql = (upperBound: string) =>
  `SELECT DISTINCT repo FROM v1_bridged_images b WHERE id = @id AND ${LIVE} AND repo >= @from ${upperBound}
     AND (CAST(@like AS TEXT) IS NULL OR repo LIKE @like ESCAPE '\\') AND (CAST(@regex AS TEXT) IS NULL OR repo REGEXP @regex)
   ORDER BY repo LIMIT @n`;

const Q = {
  // v2 tags v1 clients see: pushed over v2 (not made from a v1 tag) and with no v1 tag of the same name.
  v2OnlyTags: sql<{ tag: string; digest: Digest }>(
    `SELECT t.tag, t.digest FROM tags t WHERE t.repo = ? AND t.bridged_from_v1 IS NULL
        AND NOT EXISTS (SELECT 1 FROM v1_tags v WHERE v.repo = t.repo AND v.tag = t.tag) ORDER BY t.tag`,
  ),
  v2OnlyTag: sql<Digest>(
    `SELECT t.digest FROM tags t WHERE t.repo = ? AND t.tag = ? AND t.bridged_from_v1 IS NULL
        AND NOT EXISTS (SELECT 1 FROM v1_tags v WHERE v.repo = t.repo AND v.tag = t.tag)`,
    { pluck: true },
  ),
  bridged: sql<{ top_id: string | null; reason: string | null }>('SELECT top_id, reason FROM v1_bridged WHERE repo = ? AND manifest = ?'),
  putBridged: sql(
    `INSERT INTO v1_bridged (repo, manifest, top_id, reason) VALUES (?, ?, ?, ?)
     ON CONFLICT (repo, manifest) DO UPDATE SET top_id = excluded.top_id, reason = excluded.reason`,
  ),
  putImage: sql(
    `INSERT INTO v1_bridged_images (repo, id, parent, manifest, json, layer_digest, layer_size)
     VALUES (@repo, @id, @parent, @manifest, @json, @layerDigest, @layerSize)
     ON CONFLICT (repo, id) DO UPDATE SET parent = excluded.parent, manifest = excluded.manifest, json = excluded.json,
       layer_digest = excluded.layer_digest, layer_size = excluded.layer_size`,
  ),
  image: sql<ImageRow>(`SELECT repo, id, parent, manifest, json, layer_digest, layer_size FROM v1_bridged_images b WHERE repo = ? AND id = ? AND ${LIVE}`),
  // One range of names (name-filter.ts): with and without an end, so that both bounds seek the index.
  reposRange: sql<string>(reposSql('AND repo < @to'), { pluck: true }),
  reposFrom: sql<string>(reposSql(''), { pluck: true }),
};

export class BridgeIndex extends IndexObject {
  constructor(db: Db | IndexDatabase) {
    super(databaseOf(db));
  }

  /** The repository's v2-only tags (pushed over v2, no v1 tag of that name), by tag. */
  v2OnlyTags(repo: string): Promise<{ tag: string; digest: Digest }[]> {
    return this.sql.all(Q.v2OnlyTags, repo);
  }

  /** The manifest a v2-only tag points at, if the tag is one. */
  v2OnlyTag(repo: string, tag: string): Promise<Digest | undefined> {
    return this.sql.get(Q.v2OnlyTag, repo, tag);
  }

  /** What was made of a manifest: its top v1 id, or null and why it has no v1 form; undefined if not made yet. */
  async bridged(repo: string, manifest: Digest): Promise<{ topId: string | null; reason: string | null } | undefined> {
    const r = await this.sql.get(Q.bridged, repo, manifest);
    return r && { topId: r.top_id, reason: r.reason };
  }

  /** Record that a manifest has no v1 form, and why. */
  async recordNoV1Form(repo: string, manifest: Digest, reason: string): Promise<void> {
    await this.sql.run(Q.putBridged, repo, manifest, null, reason);
  }

  /**
   * Record the v1 images made of a manifest, root first (the last is its top), in one transaction: a reader
   * sees the manifest bridged only with every image of its chain.
   */
  recordImages(repo: string, manifest: Digest, images: readonly BridgedImageRecord[]): Promise<void> {
    const top = images[images.length - 1];
    if (!top) return Promise.reject(new Error('a bridged chain has at least one image'));
    return this.transaction(async (tx) => {
      const s = tx(this).sql;
      for (const img of images) await s.run(Q.putImage, img);
      await s.run(Q.putBridged, repo, manifest, top.id, null);
    });
  }

  /** A made v1 image of the repository, while the manifest it was made from is there. */
  async image(repo: string, id: string): Promise<BridgedImageRecord | undefined> {
    const r = await this.sql.get(Q.image, repo, id);
    return r && { repo: r.repo, id: r.id, parent: r.parent, manifest: r.manifest, json: r.json, layerDigest: r.layer_digest, layerSize: r.layer_size };
  }

  /** Up to `n` repositories among `visible` with a made image of this id, by name. */
  async reposWithImage(id: string, visible: readonly NamePattern[], n: number): Promise<string[]> {
    const out: string[] = [];
    for (const r of nameRanges(visible)) {
      if (out.length >= n) break;
      const params = { id, from: r.from, regex: r.regex, like: r.like, n: n - out.length };
      out.push(...(await (r.to === null ? this.sql.all(Q.reposFrom, params) : this.sql.all(Q.reposRange, { ...params, to: r.to }))));
    }
    return out;
  }
}
