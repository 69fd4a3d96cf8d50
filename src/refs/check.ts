import { createHash } from 'node:crypto';
import type { Db } from '../index/db';
import type { StorageDriver } from '../storage/driver';

// `registry check`: every blob re-hashed against its digest and size (or a random sample), then every
// reference checked in both directions (tags -> manifests -> blobs and child manifests, links, v1 images ->
// their blobs and parents, v1 tags -> images), with the images a bad blob breaks. `repair` moves corrupt
// blobs aside and forgets missing and corrupt ones (their blob row and repository links), so a pull fails
// with BLOB_UNKNOWN and a push of the same content heals the image. Memory stays bounded: blobs are read in
// windows, hashed as they stream, and at most MAX_LISTED problems are kept.

export interface CheckOptions {
  /** Re-hash only this many blobs, chosen at random (a quick nightly run); references are all checked. */
  sample?: number;
  repair?: boolean;
  onProgress?: (p: { phase: 'blobs' | 'references'; done: number; total?: number }) => void;
  signal?: AbortSignal;
}

export interface BadBlob {
  digest: string;
  problem: 'missing' | 'corrupt';
  detail: string;
  /** repo:tag (v2) and repo image id (v1) that need it. */
  affected: string[];
  /** Where a corrupt blob was moved (repair). */
  quarantinedAt?: string;
}

export interface CheckReport {
  blobsChecked: number;
  bytesChecked: number;
  badBlobs: BadBlob[];
  /** Broken references, described (at most MAX_LISTED). */
  references: string[];
  referenceCount: number;
  repaired: boolean;
  durationMs: number;
}

const WINDOW = 500;
const CONCURRENCY = 4;
const MAX_LISTED = 1000;

type BlobRow = { digest: string; size: number; location: string };

export async function checkRegistry(db: Db, driver: StorageDriver, opts: CheckOptions = {}): Promise<CheckReport> {
  const started = Date.now();
  const report: CheckReport = { blobsChecked: 0, bytesChecked: 0, badBlobs: [], references: [], referenceCount: 0, repaired: !!opts.repair, durationMs: 0 };
  const total = opts.sample ?? (db.prepare('SELECT count(*) FROM blobs').pluck().get() as number);
  const next = opts.sample
    ? batches(db.prepare('SELECT digest, size, location FROM blobs ORDER BY random() LIMIT ?').all(opts.sample) as BlobRow[])
    : windows(db);
  for (const window of next) {
    opts.signal?.throwIfAborted();
    for (let i = 0; i < window.length; i += CONCURRENCY) {
      const results = await Promise.all(window.slice(i, i + CONCURRENCY).map((b) => verifyBlob(driver, b)));
      for (const [j, problem] of results.entries()) {
        const b = window[i + j]!;
        report.blobsChecked++;
        report.bytesChecked += b.size;
        if (problem && report.badBlobs.length < MAX_LISTED) report.badBlobs.push({ digest: b.digest, ...problem, affected: affectedBy(db, b.digest) });
      }
      opts.onProgress?.({ phase: 'blobs', done: report.blobsChecked, total });
    }
  }
  checkReferences(db, report);
  opts.onProgress?.({ phase: 'references', done: 1, total: 1 });
  if (opts.repair) await repair(db, driver, report.badBlobs);
  report.durationMs = Date.now() - started;
  return report;
}

function* windows(db: Db): Generator<BlobRow[]> {
  const page = db.prepare('SELECT digest, size, location FROM blobs WHERE digest > ? ORDER BY digest LIMIT ?');
  for (let after = ''; ; ) {
    const rows = page.all(after, WINDOW) as BlobRow[];
    if (rows.length === 0) return;
    yield rows;
    after = rows[rows.length - 1]!.digest;
  }
}

function* batches(rows: BlobRow[]): Generator<BlobRow[]> {
  for (let i = 0; i < rows.length; i += WINDOW) yield rows.slice(i, i + WINDOW);
}

async function verifyBlob(driver: StorageDriver, b: BlobRow): Promise<Pick<BadBlob, 'problem' | 'detail'> | undefined> {
  const hash = createHash('sha256');
  let size = 0;
  try {
    for await (const chunk of await driver.read(b.location)) {
      hash.update(chunk as Buffer);
      size += (chunk as Buffer).length;
    }
  } catch (err) {
    if ((err as Error).name === 'StorageNotFoundError') return { problem: 'missing', detail: `${b.location} is not in storage` };
    throw err;
  }
  const digest = `sha256:${hash.digest('hex')}`;
  if (size !== b.size) return { problem: 'corrupt', detail: `${b.location} holds ${size} bytes, ${b.size} recorded` };
  if (digest !== b.digest) return { problem: 'corrupt', detail: `${b.location} hashes to ${digest}` };
  return undefined;
}

/** Tags and v1 images that need `digest`: through manifests naming it, and indexes naming those. */
function affectedBy(db: Db, digest: string): string[] {
  const v2 = db
    .prepare(
      `WITH RECURSIVE users(repo, digest) AS (
         SELECT repo, digest FROM manifests WHERE digest = @d
         UNION SELECT repo, digest FROM manifest_refs WHERE child = @d
         UNION SELECT r.repo, r.digest FROM manifest_refs r JOIN users u ON r.repo = u.repo AND r.child = u.digest
       ) SELECT DISTINCT t.repo || ':' || t.tag FROM tags t JOIN users u ON t.repo = u.repo AND t.digest = u.digest ORDER BY 1 LIMIT 100`,
    )
    .pluck()
    .all({ d: digest }) as string[];
  const v1 = db
    .prepare(`SELECT repo || ' v1 image ' || id FROM v1_images WHERE json_digest = @d OR layer_digest = @d ORDER BY 1 LIMIT 100`)
    .pluck()
    .all({ d: digest }) as string[];
  return [...v2, ...v1];
}

/** Each query lists broken references as text; all run in SQL, streaming. */
const REFERENCE_CHECKS: [string, string][] = [
  ['tag points to a manifest the repository does not have', `SELECT t.repo || ':' || t.tag || ' -> ' || t.digest FROM tags t WHERE NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo = t.repo AND m.digest = t.digest)`],
  ['manifest whose bytes are not a stored blob', `SELECT m.repo || '@' || m.digest FROM manifests m WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = m.digest)`],
  [
    'manifest names something that is neither a stored blob nor a manifest of its repository',
    `SELECT r.repo || '@' || r.digest || ' -> ' || r.child FROM manifest_refs r
      WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = r.child) AND NOT EXISTS (SELECT 1 FROM manifests m WHERE m.repo = r.repo AND m.digest = r.child)`,
  ],
  ['repository links a blob that is not stored', `SELECT l.repo || ' -> ' || l.digest FROM repo_blobs l WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = l.digest)`],
  [
    'v1 image names a blob that is not stored',
    `SELECT i.repo || ' v1 image ' || i.id FROM v1_images i
      WHERE NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = i.json_digest)
         OR (i.layer_digest IS NOT NULL AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.digest = i.layer_digest))`,
  ],
  ['v1 image whose parent is not in its repository', `SELECT i.repo || ' v1 image ' || i.id || ' -> parent ' || i.parent FROM v1_images i WHERE i.parent IS NOT NULL AND NOT EXISTS (SELECT 1 FROM v1_images p WHERE p.repo = i.repo AND p.id = i.parent)`],
  ['v1 tag points to an image the repository does not have', `SELECT t.repo || ':' || t.tag || ' -> ' || t.image_id FROM v1_tags t WHERE NOT EXISTS (SELECT 1 FROM v1_images i WHERE i.repo = t.repo AND i.id = t.image_id)`],
];

function checkReferences(db: Db, report: CheckReport): void {
  for (const [what, sql] of REFERENCE_CHECKS) {
    for (const text of db.prepare(sql).pluck().iterate() as Iterable<string>) {
      if (report.references.length < MAX_LISTED) report.references.push(`${what}: ${text}`);
      report.referenceCount++;
    }
  }
}

/** Corrupt bytes aside; missing and corrupt blobs forgotten with their links, in one transaction each. */
async function repair(db: Db, driver: StorageDriver, bad: BadBlob[]): Promise<void> {
  const forget = db.transaction((digest: string) => {
    db.prepare('DELETE FROM repo_blobs WHERE digest = ?').run(digest);
    db.prepare('DELETE FROM blobs WHERE digest = ?').run(digest);
  });
  const location = db.prepare('SELECT location FROM blobs WHERE digest = ?').pluck();
  for (const b of bad) {
    if (b.problem === 'corrupt') b.quarantinedAt = await driver.quarantine(location.get(b.digest) as string);
    forget.immediate(b.digest);
  }
}
