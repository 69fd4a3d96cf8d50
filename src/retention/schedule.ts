import type { FastifyInstance } from 'fastify';
import { repeatInBackground } from '../background';
import type { Retention, RetentionDeletion } from './retention';

/** The audit line of one retention deletion (or, in a dry run, one it would make). */
export function auditRetention(app: FastifyInstance, d: RetentionDeletion, dryRun: boolean): void {
  const audit = { action: dryRun ? 'retention-dry-run' : 'retention', repository: d.repository, reference: d.tag ?? d.digest, digest: d.digest, reason: d.reason };
  app.log.info({ audit }, 'audit');
}

/** The server's retention: a run every `intervalSeconds` when policies are set (0: none), stopped by close(). */
export function scheduleRetention(app: FastifyInstance, retention: Retention, intervalSeconds: number, dryRun: boolean): void {
  if (!retention.enabled) return;
  repeatInBackground(app, intervalSeconds, (signal) =>
    retention.run({ dryRun, signal, onDelete: (d) => auditRetention(app, d, dryRun) }).then(
      (report) => app.log.info(report, 'retention'),
      (err) => {
        if (!signal.aborted) app.log.error({ err }, 'retention failed; the next run starts over');
      },
    ),
  );
}
