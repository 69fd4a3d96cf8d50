import { loadConfig } from '../config/load';
import type { Config } from '../config/schema';
import type { GcReport, GcRunOptions } from '../gc/types';
import type { Command } from './dispatch';
import { count, formatBytes, formatDuration } from './format';
import type { CliIo } from './io';
import { Progress } from './progress';

// `registry gc [--dry-run]`: one garbage collection run against the server's configuration, with
// progress per phase on stderr and a one-line summary on stdout. The collector is passed in (the
// entry passes src/gc/run.ts) so this file compiles and is tested without the real one.

export type RunGc = (config: Config, opts: GcRunOptions) => Promise<GcReport>;

export interface GcDeps {
  run: RunGc;
  /** Defaults to the server's loader: REGISTRY_CONFIG and REGISTRY_* overrides apply. */
  loadConfig?: () => Config;
  /** Fired by Ctrl-C or SIGTERM: the collector stops between two batches and cleans up after itself. */
  signal?: AbortSignal;
}

const USAGE = 'usage: npm run registry -- gc [--dry-run]\n';

export const gcHelp: Command['help'] = [
  ['gc [--dry-run]', 'free the storage nothing references; --dry-run only reports it'],
];

/** `gc: removed 12 blobs (1.2 GiB), ... in 1.4 s`, or `gc --dry-run: would remove ...`. */
export function gcSummary(r: GcReport): string {
  const what = [
    `${count(r.blobs, 'blob')} (${formatBytes(r.bytes)})`,
    count(r.manifests, 'manifest'),
    count(r.links, 'link'),
    `${r.staged} staged`,
    `${r.stray} stray (${formatBytes(r.strayBytes)})`,
  ].join(', ');
  const took = formatDuration(r.durationMs);
  return r.dryRun ? `gc --dry-run: would remove ${what} in ${took}` : `gc: removed ${what} in ${took}`;
}

export async function gcCommand(args: string[], io: CliIo, deps: GcDeps): Promise<number> {
  let dryRun = false;
  for (const arg of args) {
    if (arg === '--dry-run') dryRun = true;
    else {
      io.stderr.write(`registry gc: unknown argument ${JSON.stringify(arg)}\n${USAGE}`);
      return 2;
    }
  }
  const config = (deps.loadConfig ?? (() => loadConfig()))();
  const progress = new Progress(io.stderr);
  let report: GcReport;
  try {
    report = await deps.run(config, {
      dryRun,
      onProgress: (p) => progress.update(`gc ${p.phase}`, p.done, p.total),
      signal: deps.signal,
    });
  } catch (err) {
    progress.abort();
    if (deps.signal?.aborted) {
      io.stderr.write('registry gc: interrupted; the next run finishes the job\n');
      return 130;
    }
    throw err;
  }
  progress.finish();
  io.stdout.write(gcSummary(report) + '\n');
  return 0;
}
