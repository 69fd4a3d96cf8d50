import { loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import { rebuildIndex, type RebuildReport } from '../refs/rebuild';
import type { Command } from './dispatch';
import { count, formatDuration } from './format';
import type { CliIo } from './io';
import { requireSqliteIndex } from './index-access';
import { Progress } from './progress';

// `registry rebuild-index [--force]`: a new index from the reference journal in storage. Run it with the
// server stopped: the server would keep writing to the index it has open.

const USAGE = 'usage: npm run registry -- rebuild-index [--force]\n';

export const rebuildHelp: Command['help'] = [
  ['rebuild-index [--force]', 'build the index again from storage alone (server stopped); --force replaces an existing one, kept beside it'],
];

export function rebuildSummary(r: RebuildReport): string {
  const what = [
    count(r.repositories, 'repository', 'repositories'),
    count(r.tags, 'tag'),
    count(r.manifests, 'manifest'),
    count(r.blobs, 'blob'),
    count(r.v1Images, 'v1 image'),
    count(r.v1Tags, 'v1 tag'),
  ].join(', ');
  const problems = r.problemCount === 0 ? 'no problems' : count(r.problemCount, 'problem');
  return `rebuild-index: ${what} from ${count(r.records, 'record')} in ${count(r.segments, 'segment')}; ${problems}; in ${formatDuration(r.durationMs)}`;
}

export async function rebuildCommand(args: string[], io: CliIo, deps: { loadConfig?: () => Config } = {}): Promise<number> {
  let force = false;
  for (const arg of args) {
    if (arg === '--force') force = true;
    else {
      io.stderr.write(`registry rebuild-index: unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
      return 2;
    }
  }
  const config = (deps.loadConfig ?? (() => loadConfig()))();
  requireSqliteIndex(config, 'rebuild-index');
  const progress = new Progress(io.stderr);
  let report: RebuildReport;
  try {
    report = await rebuildIndex(config, { force, onProgress: (p) => progress.update(`rebuild-index ${p.phase}`, p.done, p.total) });
  } catch (err) {
    progress.abort();
    throw err;
  }
  progress.finish();
  for (const p of report.problems) io.stdout.write(`problem: ${p}\n`);
  if (report.problemCount > report.problems.length) io.stdout.write(`problem: ... and ${report.problemCount - report.problems.length} more\n`);
  if (report.previous) io.stdout.write(`the index that was there is kept as ${report.previous}\n`);
  io.stdout.write('uploads that were in progress are not recovered: their clients start them again\n');
  io.stdout.write(rebuildSummary(report) + '\n');
  return report.problemCount === 0 ? 0 : 1;
}
