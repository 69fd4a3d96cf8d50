import Database from 'better-sqlite3';
import type { StorageDriver } from '../storage/driver';
import { JOURNAL_PREFIX, SNAPSHOT_PREFIX, segmentRange, snapshotDoneKey, snapshotId, snapshotKey, snapshotPartKey } from './layout';

// Journal compaction: a snapshot is the whole state of the index as journal records (one per row, as the
// triggers state it), read in one read transaction, so it stands for every record up to the
// newest sequence number that transaction saw. rebuild-index loads the newest complete snapshot and replays
// only the records after it; the segments and older snapshots it covers are deleted. Without it the journal
// would grow with every change for as long as the registry runs, and so would a rebuild.
// A snapshot without its .done (written last), or missing a part, is not used (layout.ts).

/** A part is written once it holds this much: bounds the memory of a snapshot of millions of rows. */
const PART_BYTES = 16 * 1024 * 1024;

/**
 * The state, table by table, in the order a replay must apply it (repositories before what they hold), each
 * record exactly as the triggers of migrations 6 and 8 write it (test/refs/snapshot.test.ts: a rebuild from a
 * snapshot plus the records after it gives back every row).
 */
const STATE = [
  `SELECT json_object('t', 'blob', 'd', digest, 'n', size, 'l', location, 'c', created_at) FROM blobs`,
  `SELECT json_object('t', 'repo', 'r', name, 'desc', description, 'v1p', v1_private, 'v1i', v1_indexed, 'c', created_at) FROM repositories`,
  `SELECT json_object('t', 'link', 'r', repo, 'd', digest, 'at', linked_at) FROM repo_blobs`,
  `SELECT json_object('t', 'man', 'r', repo, 'd', digest, 'mt', media_type, 'n', size, 'a', artifact_type, 'subj', subject, 'ann', annotations, 'c', created_at) FROM manifests`,
  `SELECT json_object('t', 'ref', 'r', repo, 'd', digest, 'ch', child) FROM manifest_refs`,
  `SELECT json_object('t', 'tag', 'r', repo, 'g', tag, 'd', digest, 'u', updated_at, 'b', bridged_from_v1) FROM tags`,
  `SELECT json_object('t', 'v1tag', 'r', repo, 'g', tag, 'i', image_id, 'm', meta) FROM v1_tags`,
  `SELECT json_object('t', 'v1img', 'r', repo, 'i', id, 'p', parent, 'j', json_digest, 'l', layer_digest, 'n', layer_size, 'k', checksum, 'x', complete, 'c', created_at, 'df', diff_id, 'lf', layer_format) FROM v1_images`,
  `SELECT json_object('t', 'v1list', 'r', repo, 'i', image_id, 'k', checksum, 'o', position) FROM v1_repo_images`,
];

export interface Snapshot {
  seq: number;
  id: string;
  /** Part keys, in order. */
  parts: string[];
  records: number;
}

/** Every snapshot in storage whose .done is there and whose parts are all listed, newest first. */
export async function completeSnapshots(driver: StorageDriver): Promise<Snapshot[]> {
  const parts = new Map<string, string[]>();
  const done: { seq: number; id: string; key: string }[] = [];
  for await (const { key } of driver.listRecords(SNAPSHOT_PREFIX)) {
    const k = snapshotKey(key);
    if (!k) continue;
    const name = `${k.seq}-${k.id}`;
    if (k.part === undefined) done.push({ seq: k.seq, id: k.id, key });
    else if (parts.has(name)) parts.get(name)!.push(key);
    else parts.set(name, [key]);
  }
  const out: Snapshot[] = [];
  for (const d of done.sort((a, b) => b.seq - a.seq)) {
    const marker = await driver.getRecord(d.key);
    let meta: { parts?: unknown; records?: unknown } = {};
    try {
      meta = JSON.parse(marker?.toString('utf8') ?? '') as typeof meta;
    } catch {
      continue; // a damaged marker: the snapshot cannot be trusted whole
    }
    const listed = (parts.get(`${d.seq}-${d.id}`) ?? []).sort();
    if (typeof meta.parts !== 'number' || listed.length !== meta.parts) continue;
    out.push({ seq: d.seq, id: d.id, parts: listed, records: Number(meta.records) || 0 });
  }
  return out;
}

/** Compact once the journal's segments hold this much, or as much as the newest snapshot if that is more. */
const COMPACT_FLOOR_BYTES = 64 * 1024 * 1024;

/**
 * Compact when the segments a snapshot would replace hold more than the last snapshot did (and at least
 * COMPACT_FLOOR_BYTES): storage then holds at most about twice the index's state plus that floor, and each
 * byte of the journal is rewritten into a snapshot about once. Undefined when it was not needed.
 */
export async function compactIfGrown(indexFile: string, driver: StorageDriver, opts: CompactOptions = {}): Promise<CompactReport | undefined> {
  let journalBytes = 0;
  for await (const { key, size } of driver.listRecords(JOURNAL_PREFIX)) if (segmentRange(key)) journalBytes += size;
  const newest = (await completeSnapshots(driver))[0];
  let snapshotBytes = 0;
  if (newest) for await (const { key, size } of driver.listRecords(SNAPSHOT_PREFIX)) if (newest.parts.includes(key)) snapshotBytes += size;
  if (journalBytes < Math.max(opts.floorBytes ?? COMPACT_FLOOR_BYTES, snapshotBytes)) return undefined;
  return compactJournal(indexFile, driver, opts);
}

export interface CompactReport {
  seq: number;
  records: number;
  parts: number;
  segmentsDeleted: number;
  snapshotsDeleted: number;
}

export interface CompactOptions {
  /** compactIfGrown: the least journal worth compacting (tests lower it). */
  floorBytes?: number;
  onProgress?: (p: { phase: 'records' | 'delete'; done: number; total?: number }) => void;
  signal?: AbortSignal;
}

/**
 * Write a snapshot of the index file `indexFile` (its own read-only connection and read transaction, so the
 * server goes on writing meanwhile), then delete the segments and older snapshots it covers.
 */
export async function compactJournal(indexFile: string, driver: StorageDriver, opts: CompactOptions = {}): Promise<CompactReport> {
  const snapshot = await writeSnapshot(indexFile, driver, opts);
  const deleted = await deleteCovered(driver, snapshot, opts);
  return { seq: snapshot.seq, records: snapshot.records, parts: snapshot.parts.length, ...deleted };
}

async function writeSnapshot(indexFile: string, driver: StorageDriver, opts: CompactOptions): Promise<Snapshot> {
  const db = new Database(indexFile, { fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    db.exec('BEGIN'); // one read transaction: the rows and the sequence number they stand for agree
    const seq = db.prepare('SELECT coalesce(max(seq), 0) FROM refs_outbox').pluck().get() as number;
    const id = snapshotId();
    const parts: string[] = [];
    // Lines are encoded straight into one part-sized buffer, reused: no array of strings, no joined copy.
    const part = Buffer.allocUnsafe(PART_BYTES);
    let bytes = 0;
    let records = 0;
    const writePart = async (data: Buffer) => {
      opts.signal?.throwIfAborted();
      const key = snapshotPartKey(seq, id, parts.length);
      await driver.putRecord(key, data);
      parts.push(key);
      bytes = 0;
      opts.onProgress?.({ phase: 'records', done: records });
    };
    for (const sql of STATE) {
      for (const record of db.prepare(sql).pluck().iterate() as Iterable<string>) {
        const line = `${record}\n`;
        const size = Buffer.byteLength(line);
        if (bytes + size > PART_BYTES && bytes > 0) await writePart(part.subarray(0, bytes));
        if (size > PART_BYTES) await writePart(Buffer.from(line)); // a record larger than a part is a part
        else bytes += part.write(line, bytes);
        records++;
      }
    }
    if (bytes > 0 || parts.length === 0) await writePart(part.subarray(0, bytes));
    await driver.putRecord(snapshotDoneKey(seq, id), Buffer.from(JSON.stringify({ seq, parts: parts.length, records })));
    db.exec('COMMIT');
    return { seq, id, parts, records };
  } finally {
    db.close();
  }
}

/** Delete the closed segments a snapshot covers and every older snapshot (its .done first: never half-used). */
async function deleteCovered(driver: StorageDriver, snapshot: Snapshot, opts: CompactOptions): Promise<{ segmentsDeleted: number; snapshotsDeleted: number }> {
  const segments: string[] = [];
  for await (const { key } of driver.listRecords(JOURNAL_PREFIX)) {
    const last = segmentRange(key)?.last;
    if (last !== undefined && last <= snapshot.seq) segments.push(key); // an open segment is still being written
  }
  const older = new Map<string, string[]>();
  for await (const { key } of driver.listRecords(SNAPSHOT_PREFIX)) {
    const k = snapshotKey(key);
    // Older ones only: a newer snapshot (another compaction) may be still be written.
    if (!k || k.seq > snapshot.seq || (k.seq === snapshot.seq && k.id === snapshot.id)) continue;
    const name = `${k.seq}-${k.id}`;
    const keys = older.get(name) ?? [];
    if (k.part === undefined) keys.unshift(key);
    else keys.push(key);
    older.set(name, keys);
  }
  const total = segments.length + older.size;
  let done = 0;
  for (const key of segments) {
    await driver.deleteRecord(key);
    opts.onProgress?.({ phase: 'delete', done: ++done, total });
  }
  for (const keys of older.values()) {
    for (const key of keys) await driver.deleteRecord(key);
    opts.onProgress?.({ phase: 'delete', done: ++done, total });
  }
  return { segmentsDeleted: segments.length, snapshotsDeleted: older.size };
}
