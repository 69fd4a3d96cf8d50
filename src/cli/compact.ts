import { loadConfig } from '../config/load';
import { openExistingIndex } from '../index/db';
import { compactJournal } from '../refs/snapshot';
import { createDriver } from '../storage/factory';
import type { Command } from './dispatch';
import { formatDuration } from './format';
import { requireSqliteIndex, type IndexDeps } from './index-access';
import type { CliIo } from './io';
import { Progress } from './progress';

// `registry compact-journal`: a snapshot of the index in storage, then the journal segments it covers are
// deleted (src/refs/snapshot.ts). Safe while the server runs: the snapshot reads in its own transaction.

const USAGE = 'usage: npm run registry -- compact-journal\n';

export const compactHelp: Command['help'] = [['compact-journal', 'write the index to storage as a snapshot and delete the journal it replaces']];

export async function compactCommand(args: string[], io: CliIo, deps: IndexDeps & { signal?: AbortSignal } = {}): Promise<number> {
  if (args.length !== 0) {
    io.stderr.write(USAGE);
    return 2;
  }
  const started = Date.now();
  const config = (deps.loadConfig ?? (() => loadConfig()))();
  // Opened once to say clearly when it is missing (and to bring it to this version's schema); the snapshot
  // reads it on a connection of its own. Nothing here changes the index, so there is nothing to journal after.
  requireSqliteIndex(config, 'compact-journal');
  openExistingIndex(config.index.path).close();
  const driver = await createDriver(config);
  const progress = new Progress(io.stderr);
  try {
    const report = await compactJournal(config.index.path, driver, {
      signal: deps.signal,
      onProgress: (p) => progress.update(p.phase === 'records' ? 'snapshot records' : 'deleted segments and snapshots', p.done, p.total),
    });
    progress.finish();
    io.stdout.write(
      `compact-journal: snapshot of ${report.records} records up to #${report.seq} in ${report.parts} part(s); ` +
        `deleted ${report.segmentsDeleted} segment(s) and ${report.snapshotsDeleted} older snapshot(s) in ${formatDuration(Date.now() - started)}\n`,
    );
    return 0;
  } finally {
    await driver.close?.();
  }
}
