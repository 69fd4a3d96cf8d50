import type { Db } from './db';
import type { MetadataIndex } from './metadata-index';
import { databaseOf } from './connection';
import { IndexObject, type IndexDatabase, type Tx } from './database';
import { sql, type Query } from './sql';

// Deleting a whole repository, both protocols' content at once: v2 tags, manifests and blob links, v1 tags,
// images and image list, its open uploads, and the repository row. One transaction, so a pull sees the
// repository whole or gone. The bytes stay for garbage collection (other repositories may share them).

export interface DeletedRepository {
  tags: number;
  manifests: number;
  blobs: number;
  v1Tags: number;
  v1Images: number;
  uploads: number;
}

const DELETES: [keyof DeletedRepository | null, string][] = [
  ['tags', 'DELETE FROM tags WHERE repo = ?'],
  ['manifests', 'DELETE FROM manifests WHERE repo = ?'],
  [null, 'DELETE FROM manifest_refs WHERE repo = ?'],
  ['blobs', 'DELETE FROM repo_blobs WHERE repo = ?'],
  ['v1Tags', 'DELETE FROM v1_tags WHERE repo = ?'],
  [null, 'DELETE FROM v1_repo_images WHERE repo = ?'],
  ['v1Images', 'DELETE FROM v1_images WHERE repo = ?'],
  // What the v2 -> v1 bridge made from the repository's manifests (docs/bridge.md).
  [null, 'DELETE FROM v1_bridged WHERE repo = ?'],
  [null, 'DELETE FROM v1_bridged_images WHERE repo = ?'],
  // Garbage collection sweeps their staged bytes; a later PATCH or PUT fails with BLOB_UPLOAD_UNKNOWN
  // instead of linking into the deleted repository.
  ['uploads', 'DELETE FROM uploads WHERE repo = ?'],
];
const STATEMENTS: { key: keyof DeletedRepository | null; q: Query }[] = DELETES.map(([key, text]) => ({ key, q: sql(text) }));

export class RepositoryIndex extends IndexObject {
  constructor(
    db: Db | IndexDatabase,
    private readonly core: MetadataIndex,
  ) {
    super(databaseOf(db));
  }

  /**
   * Delete `name` and everything in it; undefined if there is no such repository. `within` runs in the same
   * transaction once it is done (the repository's delete event).
   */
  async deleteRepository(name: string, within?: (tx: Tx) => Promise<void>): Promise<DeletedRepository | undefined> {
    return this.transaction(async (tx) => {
      const core = tx(this.core);
      if (!(await core.getRepository(name))) return undefined;
      const counts: DeletedRepository = { tags: 0, manifests: 0, blobs: 0, v1Tags: 0, v1Images: 0, uploads: 0 };
      const s = tx(this).sql;
      for (const { key, q } of STATEMENTS) {
        const { changes } = await s.run(q, name);
        if (key) counts[key] = changes;
      }
      await core.deleteRepository(name);
      await within?.(tx);
      return counts;
    });
  }
}
