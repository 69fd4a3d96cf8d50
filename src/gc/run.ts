import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Config } from '../config/schema';
import { openDatabase, openExistingIndex } from '../index/db';
import { GcIndex } from '../index/gc-index';
import { openIndex } from '../index/open';
import { flushJournal } from '../refs/journal';
import { createDriver } from '../storage/factory';
import { GarbageCollector, type GcSettings } from './collector';
import type { GcReport, GcRunOptions } from './types';

/** gc.* of the configuration, in the collector's units. */
export function gcSettings(config: Config): GcSettings {
  return { delayMs: config.gc.delay * 1000, untagged: config.gc.untagged === 'delete' ? 'delete' : 'keep' };
}

/**
 * One garbage collection over the index and storage the configuration names, as the CLI runs it (safe
 * while the server runs: both take the index's write lock per small transaction). A dry run works on a
 * copy of the index and touches no storage, so it reports exactly what a real run would remove now.
 */
export async function runGarbageCollection(config: Config, opts: GcRunOptions = {}): Promise<GcReport> {
  if (config.index.driver === 'postgres') return collectOnPostgres(config, opts);
  const db = openExistingIndex(config.index.path);
  let copyDir: string | undefined;
  const dbs = [db];
  try {
    let target = db;
    if (opts.dryRun) {
      copyDir = mkdtempSync(path.join(tmpdir(), 'registry-gc-'));
      const copy = path.join(copyDir, 'index.db');
      await db.backup(copy);
      target = openDatabase(copy);
      dbs.push(target);
      target.prepare('DELETE FROM gc_lock').run(); // the copy is ours alone, whoever collects the original
    }
    const driver = await createDriver(config);
    try {
      const report = await new GarbageCollector(new GcIndex(target), driver, gcSettings(config)).run(opts);
      if (!opts.dryRun) await flushJournal(db, driver); // the blobs it removed, as the server records them
      return report;
    } finally {
      await driver.close?.();
    }
  } finally {
    for (const d of dbs) d.close();
    if (copyDir) rmSync(copyDir, { recursive: true, force: true });
  }
}

/** The same on the PostgreSQL index; no dry run there (it has no file to copy aside, and a run is many transactions). */
async function collectOnPostgres(config: Config, opts: GcRunOptions): Promise<GcReport> {
  if (opts.dryRun) throw new Error('--dry-run needs the SQLite index (it collects on a copy of the file); with index.driver postgres, run retention --dry-run to preview deletions');
  const { database } = await openIndex(config.index, undefined, { lead: false });
  try {
    const driver = await createDriver(config);
    try {
      return await new GarbageCollector(new GcIndex(database), driver, gcSettings(config)).run(opts);
    } finally {
      await driver.close?.();
    }
  } finally {
    await database.close();
  }
}
