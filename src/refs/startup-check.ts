import { existsSync } from 'node:fs';
import path from 'node:path';
import type { StorageDriver } from '../storage/driver';
import { JOURNAL_PREFIX, SNAPSHOT_PREFIX } from './layout';

/** The index is missing while storage holds a registry's data: starting would show an empty registry over it. */
export class IndexMissingError extends Error {
  override name = 'IndexMissingError';
}

/** Whether storage holds anything a registry wrote: a journal segment, a snapshot or a committed blob. */
export async function storageHasData(driver: StorageDriver): Promise<boolean> {
  for (const prefix of [JOURNAL_PREFIX, SNAPSHOT_PREFIX]) for await (const _ of driver.listRecords(prefix)) return true;
  if (driver.listObjects) for await (const _ of driver.listObjects()) return true;
  return false;
}

/** Refuse to create a fresh index over storage that already holds a registry's data. */
export async function checkIndexPresent(indexPath: string, driver: StorageDriver): Promise<void> {
  if (indexPath === ':memory:' || existsSync(indexPath)) return;
  if (!(await storageHasData(driver))) return;
  throw new IndexMissingError(
    `the index ${path.resolve(indexPath)} (index.path) is missing, but the storage holds a registry's data. ` +
      'Rebuild the index from storage with `npm run registry -- rebuild-index` (or restore a backup), then start again.',
  );
}
