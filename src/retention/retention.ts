import { fixedGlob, type NameMatcher } from '../auth/globs';
import type { RetentionIndex } from '../index/retention-index';
import type { Digest } from '../storage/digest';
import { judgeTags, type RetentionPolicy } from './policy';

// Applies retention policies: per repository, the first matching policy judges its tags, and the tags no
// rule keeps are removed with the manifests only they reached (one transaction per repository). Freed bytes
// come back at the next garbage collection. A dry run does the same work and rolls each repository back, so
// it reports exactly what a real run at that moment would delete.

export interface RetentionDeletion {
  repository: string;
  /** A tag removed, or (tag undefined) a manifest left unreachable by those removals. */
  tag?: string;
  digest: Digest;
  reason: string;
}

export interface RetentionReport {
  dryRun: boolean;
  repositories: number;
  tags: number;
  manifests: number;
  /** Bytes nothing refers to any more: the next garbage collection frees them. */
  bytes: number;
  durationMs: number;
}

export interface RetentionRunOptions {
  dryRun?: boolean;
  /** Each deletion (or, in a dry run, each that would happen), as it is made: the audit trail. */
  onDelete?: (d: RetentionDeletion) => void;
  onProgress?: (repositoriesDone: number) => void;
  signal?: AbortSignal;
}

const REPOS_PER_QUERY = 500;

export class Retention {
  private readonly policies: (RetentionPolicy & { match: NameMatcher })[];
  /** Runs in this process go one after the other (the schedule and an admin request). */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    policies: readonly RetentionPolicy[],
    private readonly index: RetentionIndex,
  ) {
    this.policies = policies.map((p) => ({ ...p, match: fixedGlob(p.repository) }));
  }

  get enabled(): boolean {
    return this.policies.length > 0;
  }

  /** The policy applied to `repo`: the first whose glob matches it. */
  policyFor(repo: string): RetentionPolicy | undefined {
    return this.policies.find((p) => p.match.test(repo));
  }

  run(opts: RetentionRunOptions = {}): Promise<RetentionReport> {
    const next = this.queue.then(() => this.runNow(opts));
    this.queue = next.catch(() => undefined);
    if (!opts.dryRun) {
      next.then(
        (report) => {
          Object.assign(this.counts, { runs: this.counts.runs + 1, lastSuccessMs: Date.now() });
          this.counts.tagsDeleted += report.tags;
          this.counts.manifestsDeleted += report.manifests;
        },
        () => {
          if (!opts.signal?.aborted) this.counts.failures++;
        },
      );
    }
    return next;
  }

  /** Runs in this process since start (not a dry run), for monitoring; a run from the CLI is another process's. */
  readonly counts = { runs: 0, failures: 0, lastSuccessMs: 0, tagsDeleted: 0, manifestsDeleted: 0 };

  private async runNow(opts: RetentionRunOptions): Promise<RetentionReport> {
    const started = Date.now();
    const dryRun = opts.dryRun ?? false;
    const report: RetentionReport = { dryRun, repositories: 0, tags: 0, manifests: 0, bytes: 0, durationMs: 0 };
    let done = 0;
    for (let after = ''; ; ) {
      const repos = await this.index.taggedRepositories(after, REPOS_PER_QUERY);
      if (repos.length === 0) break;
      for (const repo of repos) {
        opts.signal?.throwIfAborted();
        const policy = this.policyFor(repo);
        if (policy) await this.applyTo(repo, policy, dryRun, report, opts.onDelete);
        opts.onProgress?.(++done);
      }
      after = repos[repos.length - 1]!;
    }
    report.durationMs = Date.now() - started;
    return report;
  }

  private async applyTo(repo: string, policy: RetentionPolicy, dryRun: boolean, report: RetentionReport, onDelete: RetentionRunOptions['onDelete']) {
    const verdicts = judgeTags(policy, await this.index.tags(repo), Date.now());
    const going = verdicts.filter((v) => !v.keep);
    if (going.length === 0) return;
    const removed = await this.index.removeTags(repo, going, dryRun);
    const reasons = new Map(going.map((v) => [v.tag, v.reason]));
    report.repositories++;
    report.tags += removed.tags.length;
    report.manifests += removed.manifests.length;
    report.bytes += removed.bytes;
    for (const t of removed.tags) onDelete?.({ repository: repo, tag: t.tag, digest: t.digest, reason: reasons.get(t.tag)! });
    for (const digest of removed.manifests) onDelete?.({ repository: repo, digest, reason: 'no tag reaches it any more' });
  }
}
