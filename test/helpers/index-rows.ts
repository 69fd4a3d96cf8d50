import type { IndexDatabase } from '../../src/index/database';
import { sql } from '../../src/index/sql';
import type { ManifestRecord } from '../../src/index/v2-index';
import type { Digest } from '../../src/storage/digest';

// Rows of the index written directly, as the v1/v2 index classes would write them, for tests of the classes
// that read them (garbage collection, retention) on either backend (forEachIndex).

export const digestOf = (n: number) => `sha256:${n.toString(16).padStart(64, '0')}` as Digest;

/** Manifest `n` of `repo` as V2Index.putManifest takes it (an OCI image manifest of 100 + n bytes). */
export const manifestRecord = (repo: string, n: number, extra: Partial<ManifestRecord> = {}): ManifestRecord => ({
  repo,
  digest: digestOf(n),
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  size: 100 + n,
  artifactType: null,
  subject: null,
  annotations: null,
  ...extra,
});

export const W = {
  repo: sql('INSERT INTO repositories (name, created_at) VALUES (?, 0)'),
  blob: sql('INSERT INTO blobs (digest, size, location, created_at) VALUES (?, ?, ?, ?)'),
  manifest: sql("INSERT INTO manifests (repo, digest, media_type, size, subject, created_at) VALUES (?, ?, 'application/vnd.oci.image.manifest.v1+json', 10, ?, ?)"),
  ref: sql('INSERT INTO manifest_refs (repo, digest, child) VALUES (?, ?, ?)'),
  tag: sql('INSERT INTO tags (repo, tag, digest, updated_at) VALUES (?, ?, ?, ?)'),
  link: sql('INSERT INTO repo_blobs (repo, digest, linked_at) VALUES (?, ?, ?)'),
  upload: sql("INSERT INTO uploads (id, repo, size, state, started_at, updated_at, digest) VALUES (?, 'r', 0, '{}', 0, 0, ?)"),
  v1image: sql('INSERT INTO v1_images (repo, id, json_digest, layer_digest, created_at) VALUES (?, ?, ?, ?, 0)'),
};

export const R = {
  manifests: sql<string>('SELECT digest FROM manifests WHERE repo = ? ORDER BY digest', { pluck: true }),
  refs: sql<number>('SELECT count(*) FROM manifest_refs WHERE repo = ?', { pluck: true }),
  tags: sql<string>('SELECT tag FROM tags WHERE repo = ? ORDER BY tag', { pluck: true }),
  links: sql<string>('SELECT digest FROM repo_blobs WHERE repo = ? ORDER BY digest', { pluck: true }),
  blobs: sql<string>('SELECT digest FROM blobs ORDER BY digest', { pluck: true }),
};

/** Manifest `n` of `repo`, made at `createdAt`, a referrer of manifest `subject` if given. */
export async function manifest(db: IndexDatabase, repo: string, n: number, createdAt: number, subject: number | null = null): Promise<Digest> {
  await db.run(W.manifest, repo, digestOf(n), subject === null ? null : digestOf(subject), createdAt);
  return digestOf(n);
}
