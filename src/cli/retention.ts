import { RetentionIndex } from '../index/retention-index';
import { Retention, type RetentionReport } from '../retention/retention';
import type { Command } from './dispatch';
import { count, formatBytes, formatDuration } from './format';
import { withIndex, type IndexDeps } from './index-access';
import type { CliIo } from './io';
import { Progress } from './progress';

// `registry retention [--dry-run]`: apply retention.policies once. Each deletion is one line on stdout
// (the run's audit trail; with --dry-run, what a real run would delete now), progress on stderr, and a
// one-line summary. The bytes come back at the next gc.

const USAGE = 'usage: npm run registry -- retention [--dry-run]\n';

export const retentionHelp: Command['help'] = [['retention [--dry-run]', 'delete the tags retention.policies do not keep; --dry-run lists them']];

export interface RetentionDeps extends IndexDeps {
  signal?: AbortSignal;
}

export function retentionSummary(r: RetentionReport): string {
  const what = `${count(r.tags, 'tag')} and ${count(r.manifests, 'untagged manifest')} in ${count(r.repositories, 'repository', 'repositories')}`;
  const tail = `${formatBytes(r.bytes)} for the next gc to free, in ${formatDuration(r.durationMs)}`;
  return r.dryRun ? `retention --dry-run: would delete ${what}; ${tail}` : `retention: deleted ${what}; ${tail}`;
}

export async function retentionCommand(args: string[], io: CliIo, deps: RetentionDeps = {}): Promise<number> {
  let dryRun = false;
  for (const arg of args) {
    if (arg === '--dry-run') dryRun = true;
    else {
      io.stderr.write(`registry retention: unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
      return 2;
    }
  }
  return withIndex(deps, async (db, config) => {
    if (config.retention.policies.length === 0) {
      io.stderr.write('registry retention: no retention.policies in the configuration: nothing to do\n');
      return 0;
    }
    const retention = new Retention(config.retention.policies, new RetentionIndex(db));
    const progress = new Progress(io.stderr);
    const verb = dryRun ? 'would delete' : 'deleted';
    let report: RetentionReport;
    try {
      report = await retention.run({
        dryRun,
        signal: deps.signal,
        onProgress: (n) => progress.update('retention repositories', n),
        onDelete: (d) =>
          io.stdout.write(
            d.tag === undefined ? `${verb} manifest ${d.repository}@${d.digest}: ${d.reason}\n` : `${verb} tag ${d.repository}:${d.tag} (${d.digest}): ${d.reason}\n`,
          ),
      });
    } catch (err) {
      progress.abort();
      if (deps.signal?.aborted) {
        io.stderr.write('registry retention: interrupted; repositories done so far stay done\n');
        return 130;
      }
      throw err;
    }
    progress.finish();
    io.stdout.write(retentionSummary(report) + '\n');
    return 0;
  });
}
