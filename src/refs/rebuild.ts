import { existsSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config/schema';
import { openDatabase, type Db } from '../index/db';
import { createDriver } from '../storage/factory';
import type { StorageDriver } from '../storage/driver';
import { raiseSequenceFloor } from './journal';
import { JOURNAL_PREFIX, SNAPSHOT_PREFIX, segmentRange } from './layout';
import { Replayer, type JournalRecord } from './replay';
import { completeSnapshots, type Snapshot } from './snapshot';

// `registry rebuild-index`: a new index from storage alone. The newest complete snapshot (snapshot.ts) is
// loaded, then the journal's segments after it are replayed in sequence order, into a fresh index next to the
// configured one, which then takes its place; the blobs it names are compared with what storage holds. Uploads in progress are not recovered: their clients start again.

export interface RebuildReport {
  /** The snapshot loaded first, if there was one. */
  snapshot?: { seq: number; records: number };
  segments: number;
  records: number;
  repositories: number;
  tags: number;
  manifests: number;
  blobs: number;
  v1Images: number;
  v1Tags: number;
  /** What did not add up, at most MAX_PROBLEMS of them (problemCount has them all). */
  problems: string[];
  problemCount: number;
  /** Where the index that was there before went (with --force). */
  previous?: string;
  durationMs: number;
}

export interface RebuildOptions {
  force?: boolean;
  onProgress?: (p: { phase: 'segments' | 'objects' | 'checks'; done: number; total?: number }) => void;
}

const MAX_PROBLEMS = 100;

export async function rebuildIndex(config: Config, opts: RebuildOptions = {}): Promise<RebuildReport> {
  const started = Date.now();
  const target = path.resolve(config.index.path);
  if (config.index.path === ':memory:') throw new Error('index.path is :memory:: there is no index file to rebuild');
  if (existsSync(target) && !opts.force) {
    throw new Error(`an index exists at ${target}: rebuild-index replaces it only with --force (the old one is kept beside it)`);
  }
  // Checked before the driver starts, which would create its directories in whatever root it is given.
  const local = config.storage.local.root;
  if (config.storage.driver === 'local' && ![JOURNAL_PREFIX, SNAPSHOT_PREFIX].some((p) => existsSync(path.join(local, p)))) throw noJournal(config);
  const driver = await createDriver(config);
  try {
    const snapshot = (await completeSnapshots(driver))[0];
    const segments: string[] = [];
    for await (const { key } of driver.listRecords(JOURNAL_PREFIX)) {
      const range = segmentRange(key);
      // Segments the snapshot covers whole are left unread (compaction deletes them, but may not have yet).
      if (range && !(snapshot && range.last !== undefined && range.last <= snapshot.seq)) segments.push(key);
    }
    if (segments.length === 0 && !snapshot) throw noJournal(config);
    // Oldest first by first sequence number; records already applied (a segment written twice) are skipped.
    segments.sort((a, b) => segmentRange(a)!.first - segmentRange(b)!.first || (a < b ? -1 : 1));
    const building = `${target}.rebuilding-${process.pid}`;
    removeDb(building);
    const db = openDatabase(building);
    let report: RebuildReport;
    try {
      report = await replayInto(db, driver, snapshot, segments, opts);
      db.close();
    } catch (err) {
      db.close();
      removeDb(building);
      throw err;
    }
    if (existsSync(target)) {
      const previous = `${target}.before-rebuild-${new Date().toISOString().replace(/[:.]/g, '-')}`;
      // With its WAL: committed pages may not be in the main file yet.
      for (const suffix of ['', '-wal', '-shm']) if (existsSync(target + suffix)) renameSync(target + suffix, previous + suffix);
      report.previous = previous;
    }
    renameSync(building, target);
    report.durationMs = Date.now() - started;
    return report;
  } finally {
    await driver.close?.();
  }
}

async function replayInto(db: Db, driver: StorageDriver, snapshot: Snapshot | undefined, segments: string[], opts: RebuildOptions): Promise<RebuildReport> {
  const replayer = new Replayer(db);
  const report: RebuildReport = { segments: segments.length, records: 0, repositories: 0, tags: 0, manifests: 0, blobs: 0, v1Images: 0, v1Tags: 0, problems: [], problemCount: 0, durationMs: 0 };
  const problem = (text: string) => {
    if (report.problems.length < MAX_PROBLEMS) report.problems.push(text);
    report.problemCount++;
  };
  let applied = 0;
  let highest = 0;
  if (snapshot) {
    await loadSnapshot(db, driver, snapshot, replayer, problem);
    report.snapshot = { seq: snapshot.seq, records: snapshot.records };
    applied = highest = snapshot.seq;
  }
  for (const [i, key] of segments.entries()) {
    highest = Math.max(highest, segmentRange(key)!.last ?? 0);
    await applyLines(db, driver, key, problem, (line, where) => {
      const record = parseRecord(line, where, problem);
      if (!record || record.s <= applied) return;
      applyOne(replayer, record, where, problem);
      applied = record.s;
      report.records++;
    });
    opts.onProgress?.({ phase: 'segments', done: i + 1, total: segments.length });
  }
  await compareWithStorage(db, driver, problem, opts);
  // The replay's own triggers wrote every record again: they are in storage already. New records are
  // numbered after the highest one there.
  db.exec('DELETE FROM refs_outbox');
  raiseSequenceFloor(db, Math.max(highest, applied));
  const n = (sql: string) => db.prepare(sql).pluck().get() as number;
  Object.assign(report, {
    repositories: n('SELECT count(*) FROM repositories'),
    tags: n('SELECT count(*) FROM tags'),
    manifests: n('SELECT count(*) FROM manifests'),
    blobs: n('SELECT count(*) FROM blobs'),
    v1Images: n('SELECT count(*) FROM v1_images'),
    v1Tags: n('SELECT count(*) FROM v1_tags'),
  });
  return report;
}

/** A snapshot's records, part by part, each as it stands (no sequence number: they all stand for its seq). */
async function loadSnapshot(db: Db, driver: StorageDriver, snapshot: Snapshot, replayer: Replayer, problem: Problem): Promise<void> {
  for (const key of snapshot.parts) {
    await applyLines(db, driver, key, problem, (line, where) => {
      const record = parseRecord(line, where, problem, snapshot.seq);
      if (record) applyOne(replayer, record, where, problem);
    });
  }
}

type Problem = (text: string) => void;

/** The non-empty lines of record object `key`, in one index transaction; an object gone since the listing is a problem. */
async function applyLines(db: Db, driver: StorageDriver, key: string, problem: Problem, apply: (line: string, where: string) => void): Promise<void> {
  const data = await driver.getRecord(key);
  if (data === null) return problem(`${key}: listed but gone when read`);
  db.transaction(() => {
    for (const [n, line] of linesOf(data)) if (line !== '') apply(line, `${key} line ${n + 1}`);
  })();
}

/** One line as a record (`seq` for a snapshot's, which carry none), or undefined after saying why not. */
function parseRecord(line: string, where: string, problem: Problem, seq?: number): JournalRecord | undefined {
  try {
    const record = JSON.parse(line) as JournalRecord;
    if (seq !== undefined) record.s = seq;
    if (!Number.isSafeInteger(record.s) || typeof record.t !== 'string') throw new Error('no sequence number or type');
    return record;
  } catch (err) {
    problem(`${where}: truncated or malformed record (${(err as Error).message}), skipped`);
    return undefined;
  }
}

function applyOne(replayer: Replayer, record: JournalRecord, where: string, problem: Problem): void {
  try {
    replayer.applyRecord(record);
  } catch (err) {
    problem(`${where}: ${(err as Error).message}, skipped`);
  }
}

/** Blobs the journal names that storage does not hold, and what refers to them. */
async function compareWithStorage(db: Db, driver: StorageDriver, problem: Problem, opts: RebuildOptions): Promise<void> {
  if (!driver.listObjects) return;
  db.exec('CREATE TEMP TABLE stored (key TEXT PRIMARY KEY) WITHOUT ROWID');
  const insert = db.prepare('INSERT OR IGNORE INTO stored (key) VALUES (?)');
  let batch: string[] = [];
  let done = 0;
  const flush = () => {
    db.transaction(() => batch.forEach((k) => insert.run(k)))();
    done += batch.length;
    batch = [];
    opts.onProgress?.({ phase: 'objects', done });
  };
  for await (const o of driver.listObjects()) {
    batch.push(o.key);
    if (batch.length >= 5000) flush();
  }
  flush();
  const missing = db
    .prepare(
      `SELECT b.digest, (SELECT group_concat(repo, ', ') FROM (SELECT repo FROM repo_blobs WHERE digest = b.digest
                          UNION SELECT repo FROM v1_images WHERE json_digest = b.digest OR layer_digest = b.digest)) AS users
         FROM blobs b WHERE NOT EXISTS (SELECT 1 FROM stored s WHERE s.key = b.location)`,
    )
    .iterate() as Iterable<{ digest: string; users: string | null }>;
  for (const m of missing) problem(`blob ${m.digest} is recorded but not in storage${m.users ? ` (used by ${m.users})` : ''}`);
  db.exec('DROP TABLE stored');
  opts.onProgress?.({ phase: 'checks', done: 1, total: 1 });
}

/** The lines of a segment, decoded one at a time: a 16 MiB segment is never one string or one array of them. */
function* linesOf(data: Buffer): Generator<[number, string]> {
  for (let start = 0, n = 0; start < data.length; n++) {
    const end = data.indexOf(0x0a, start);
    const stop = end === -1 ? data.length : end;
    yield [n, data.toString('utf8', start, stop)];
    start = stop + 1;
  }
}

function removeDb(file: string): void {
  for (const f of [file, `${file}-wal`, `${file}-shm`]) rmSync(f, { force: true });
}

function noJournal(config: Config): Error {
  const where = config.storage.driver === 's3' ? `s3://${config.storage.s3.bucket}/${config.storage.s3.prefix}` : path.resolve(config.storage.local.root);
  return new Error(
    `no reference journal in ${where} (${JOURNAL_PREFIX}): this is not a registry's storage, or one written before reference records were kept; nothing was changed`,
  );
}
