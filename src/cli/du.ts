import { fixedGlob, globProblem } from '../auth/globs';
import { ALL_NAMES } from '../index/name-filter';
import { UsageIndex } from '../index/usage-index';
import { Quotas } from '../quota/quotas';
import type { Command } from './dispatch';
import { formatBytes } from './format';
import { withIndex, type IndexDeps } from './index-access';
import type { CliIo } from './io';

// `registry du [REPO-GLOB] [--bytes]`: storage charged per repository, as quotas count it (each blob once per
// repository), split into bytes shared with other repositories and bytes only this one holds; then each quota.

const USAGE = 'usage: npm run registry -- du [REPO-GLOB] [--bytes]\n';

export const duHelp: Command['help'] = [['du [REPO-GLOB] [--bytes]', 'storage per repository (shared and unique) and each quota\'s use']];

export async function duCommand(args: string[], io: CliIo, deps: IndexDeps = {}): Promise<number> {
  let glob: string | undefined;
  let exact = false;
  for (const arg of args) {
    if (arg === '--bytes') exact = true;
    else if (!arg.startsWith('-') && glob === undefined) glob = arg;
    else {
      io.stderr.write(`registry du: unexpected argument ${JSON.stringify(arg)}\n${USAGE}`);
      return 2;
    }
  }
  const problem = glob === undefined ? undefined : globProblem(glob, false);
  if (problem) {
    io.stderr.write(`registry du: ${JSON.stringify(glob)}: ${problem}\n${USAGE}`);
    return 2;
  }
  const size = exact ? String : formatBytes;
  return withIndex(deps, async (db, config) => {
    const usage = new UsageIndex(db);
    const rows = await usage.perRepository(glob === undefined ? ALL_NAMES : [fixedGlob(glob).pattern]);
    const table = [['REPOSITORY', 'SIZE', 'SHARED', 'UNIQUE', 'BLOBS'], ...rows.map((r) => [r.repo, size(r.bytes), size(r.sharedBytes), size(r.uniqueBytes), String(r.blobs)])];
    const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
    for (const row of table) io.stdout.write(row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ') + '\n');
    const total = rows.reduce((a, r) => a + r.bytes, 0);
    io.stdout.write(`total: ${size(total)} in ${rows.length} repositor${rows.length === 1 ? 'y' : 'ies'}\n`);
    for (const q of await new Quotas(config.quotas, usage).status()) {
      const pct = q.limit > 0 ? Math.floor((q.used / q.limit) * 100) : 100;
      io.stdout.write(`quota ${q.repository}: ${size(q.used)} of ${size(q.limit)} used (${pct}%)\n`);
    }
    return 0;
  });
}
