import type { Db } from '../index/db';

// Applying reference journal records (see journal.ts and migration 6 for what each carries) to an index.
// Every record says the state of one row, or its deletion, so applying one twice changes nothing, and
// applying them in sequence order gives the state the index had.

type Row = Record<string, unknown>;

/** One record as the triggers write it, with its sequence number. */
export interface JournalRecord extends Row {
  s: number;
  t: string;
  del?: 1;
}

export class Replayer {
  private readonly apply: Record<string, { put: (r: Row) => void; del: (r: Row) => void }>;

  constructor(db: Db) {
    const p = (sql: string) => db.prepare(sql);
    const run = (put: string, del: string) => {
      const [putStmt, delStmt] = [p(put), p(del)];
      return { put: (r: Row) => putStmt.run(r), del: (r: Row) => delStmt.run(r) };
    };
    this.apply = {
      blob: run(
        `INSERT INTO blobs (digest, size, location, created_at) VALUES (@d, @n, @l, @c)
         ON CONFLICT (digest) DO UPDATE SET size = excluded.size, location = excluded.location`,
        'DELETE FROM blobs WHERE digest = @d',
      ),
      repo: run(
        `INSERT INTO repositories (name, description, v1_private, v1_indexed, created_at) VALUES (@r, @desc, @v1p, @v1i, @c)
         ON CONFLICT (name) DO UPDATE SET description = excluded.description, v1_private = excluded.v1_private, v1_indexed = excluded.v1_indexed`,
        'DELETE FROM repositories WHERE name = @r',
      ),
      link: run(
        'INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (@r, @d, @at) ON CONFLICT DO UPDATE SET linked_at = excluded.linked_at',
        'DELETE FROM repo_blobs WHERE repo = @r AND digest = @d',
      ),
      man: run(
        `INSERT INTO manifests (repo, digest, media_type, size, artifact_type, subject, annotations, created_at)
         VALUES (@r, @d, @mt, @n, @a, @subj, @ann, @c) ON CONFLICT DO NOTHING`,
        'DELETE FROM manifests WHERE repo = @r AND digest = @d',
      ),
      ref: run(
        'INSERT INTO manifest_refs (repo, digest, child) VALUES (@r, @d, @ch) ON CONFLICT DO NOTHING',
        'DELETE FROM manifest_refs WHERE repo = @r AND digest = @d AND child = @ch',
      ),
      tag: run(
        `INSERT INTO tags (repo, tag, digest, updated_at, bridged_from_v1) VALUES (@r, @g, @d, @u, @b)
         ON CONFLICT (repo, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at, bridged_from_v1 = excluded.bridged_from_v1`,
        'DELETE FROM tags WHERE repo = @r AND tag = @g',
      ),
      v1tag: run(
        'INSERT INTO v1_tags (repo, tag, image_id, meta) VALUES (@r, @g, @i, @m) ON CONFLICT (repo, tag) DO UPDATE SET image_id = excluded.image_id, meta = excluded.meta',
        'DELETE FROM v1_tags WHERE repo = @r AND tag = @g',
      ),
      v1img: run(
        `INSERT INTO v1_images (repo, id, parent, json_digest, layer_digest, layer_size, checksum, complete, created_at, diff_id, layer_format)
         VALUES (@r, @i, @p, @j, @l, @n, @k, @x, @c, @df, @lf)
         ON CONFLICT (repo, id) DO UPDATE SET parent = excluded.parent, json_digest = excluded.json_digest,
           layer_digest = excluded.layer_digest, layer_size = excluded.layer_size, checksum = excluded.checksum, complete = excluded.complete,
           diff_id = excluded.diff_id, layer_format = excluded.layer_format`,
        'DELETE FROM v1_images WHERE repo = @r AND id = @i',
      ),
      v1list: run(
        'INSERT INTO v1_repo_images (repo, image_id, checksum, position) VALUES (@r, @i, @k, @o) ON CONFLICT (repo, image_id) DO UPDATE SET checksum = excluded.checksum, position = excluded.position',
        'DELETE FROM v1_repo_images WHERE repo = @r AND image_id = @i',
      ),
    };
  }

  /** Apply one record; throws (naming what is wrong) if it is not one this version writes. */
  applyRecord(r: JournalRecord): void {
    const kind = Object.hasOwn(this.apply, r.t) ? this.apply[r.t] : undefined;
    if (!kind) throw new Error(`unknown record type ${JSON.stringify(r.t)}`);
    (r.del === 1 ? kind.del : kind.put)(withNulls(r));
  }
}

/** Every named parameter a statement may use, null when the record leaves it out (better-sqlite3 wants them all). */
const PARAMS = ['d', 'n', 'l', 'c', 'r', 'desc', 'v1p', 'v1i', 'at', 'mt', 'a', 'subj', 'ann', 'ch', 'g', 'u', 'i', 'm', 'p', 'j', 'k', 'x', 'o', 'b', 'df', 'lf'];

function withNulls(r: Row): Row {
  const out: Row = {};
  for (const k of PARAMS) out[k] = r[k] ?? null;
  return out;
}
