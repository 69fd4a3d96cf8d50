import { checkRegistry, type CheckReport } from '../refs/check';
import { createDriver } from '../storage/factory';
import type { Command } from './dispatch';
import { count, formatBytes, formatDuration } from './format';
import { withSqliteIndex, type IndexDeps } from './index-access';
import type { CliIo } from './io';
import { Progress } from './progress';

// `registry check [--repair] [--sample N]`: is what is stored intact, and does every reference lead somewhere?
// Exit status 0 when all is well, 1 when something was wrong (repaired or not).

const USAGE = 'usage: npm run registry -- check [--repair] [--sample N]\n';

export const checkHelp: Command['help'] = [
  ['check [--repair] [--sample N]', 're-hash every blob (or N at random) and check every reference; --repair quarantines corrupt blobs and forgets missing ones'],
];

export function checkSummary(r: CheckReport): string {
  const bad = r.badBlobs.length + r.referenceCount;
  const what = `${count(r.blobsChecked, 'blob')} (${formatBytes(r.bytesChecked)}) and every reference checked`;
  const verdict = bad === 0 ? 'all intact' : `${count(r.badBlobs.length, 'bad blob')}, ${count(r.referenceCount, 'broken reference')}${r.repaired ? ' (repaired)' : ''}`;
  return `check: ${what}: ${verdict}, in ${formatDuration(r.durationMs)}`;
}

export async function checkCommand(args: string[], io: CliIo, deps: IndexDeps & { signal?: AbortSignal } = {}): Promise<number> {
  let repair = false;
  let sample: number | undefined;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--repair') repair = true;
    else if (arg === '--sample' && /^[1-9]\d{0,8}$/.test(args[i + 1] ?? '')) sample = Number(args[++i]);
    else {
      io.stderr.write(`registry check: unexpected argument ${JSON.stringify(arg)}\n${USAGE}`);
      return 2;
    }
  }
  return withSqliteIndex(deps, 'check', async (db, config) => {
    const driver = await createDriver(config);
    const progress = new Progress(io.stderr);
    let report: CheckReport;
    try {
      report = await checkRegistry(db, driver, { repair, sample, signal: deps.signal, onProgress: (p) => progress.update(`check ${p.phase}`, p.done, p.total) });
    } catch (err) {
      progress.abort();
      throw err;
    } finally {
      await driver.close?.();
    }
    progress.finish();
    for (const b of report.badBlobs) {
      io.stdout.write(`${b.problem} blob ${b.digest}: ${b.detail}${b.quarantinedAt ? `; moved to ${b.quarantinedAt}` : ''}\n`);
      for (const a of b.affected) io.stdout.write(`  affects ${a}\n`);
    }
    for (const r of report.references) io.stdout.write(`broken reference: ${r}\n`);
    if (report.referenceCount > report.references.length) io.stdout.write(`broken reference: ... and ${report.referenceCount - report.references.length} more\n`);
    io.stdout.write(checkSummary(report) + '\n');
    return report.badBlobs.length + report.referenceCount === 0 ? 0 : 1;
  });
}
