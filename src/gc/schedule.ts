import type { FastifyInstance } from 'fastify';
import { repeatInBackground } from '../background';
import { GcBusyError, type GarbageCollector } from './collector';

/**
 * The server's garbage collection: first the deletions a killed run left (a push of such a digest waits
 * for them), then a run every `intervalSeconds` (0: none), one at a time, stopped by close().
 */
export async function scheduleGarbageCollection(app: FastifyInstance, collector: GarbageCollector, intervalSeconds: number): Promise<void> {
  try {
    const left = await collector.finishDoomed();
    if (left.blobs > 0) app.log.info(left, 'garbage collection: finished deleting blobs an interrupted run had taken out of the index');
  } catch (err) {
    if (!(err instanceof GcBusyError)) throw err;
    app.log.info({ holder: err.holder }, 'garbage collection: another process is collecting; it finishes what is left');
  }
  repeatInBackground(app, intervalSeconds, (signal) =>
    collector.run({ signal }).then(
      (report) => app.log.info(report, 'garbage collection'),
      (err) => {
        if (signal.aborted) return;
        if (err instanceof GcBusyError) app.log.info({ holder: err.holder }, 'garbage collection skipped: another process is collecting');
        else app.log.error({ err }, 'garbage collection failed; the next run starts over');
      },
    ),
  );
}
