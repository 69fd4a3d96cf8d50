import { existsSync } from 'node:fs';
import path from 'node:path';
import type { Command } from './dispatch';
import { formatBytes, formatDuration } from './format';
import { withSqliteIndex, type IndexDeps } from './index-access';
import type { CliIo } from './io';
import { Progress } from './progress';

// `registry backup FILE`: a consistent copy of the index with SQLite's online backup, page by page, while
// the server goes on writing (pages changed meanwhile are copied again). Restore: stop the server, put the
// copy at index.path, start. Storage is not copied: back it up with the storage's own tools.

const USAGE = 'usage: npm run registry -- backup <file>\n';

export const backupHelp: Command['help'] = [['backup <file>', 'a consistent copy of the index, taken while the server runs']];

export async function backupCommand(args: string[], io: CliIo, deps: IndexDeps = {}): Promise<number> {
  if (args.length !== 1 || args[0]!.startsWith('-')) {
    io.stderr.write(USAGE);
    return 2;
  }
  const file = path.resolve(args[0]!);
  if (existsSync(file)) {
    io.stderr.write(`registry backup: ${file} exists: name a new file\n`);
    return 1;
  }
  const started = Date.now();
  return withSqliteIndex(deps, 'backup', async (db) => {
    const progress = new Progress(io.stderr);
    const meta = await db.backup(file, {
      progress: ({ totalPages, remainingPages }) => {
        progress.update('backup pages', totalPages - remainingPages, totalPages);
        return 1000; // pages per step: the server's writes get the lock in between
      },
    });
    progress.finish();
    const size = meta.totalPages * (db.pragma('page_size', { simple: true }) as number);
    io.stdout.write(`backup: ${file} (${formatBytes(size)}) in ${formatDuration(Date.now() - started)}\n`);
    return 0;
  });
}
