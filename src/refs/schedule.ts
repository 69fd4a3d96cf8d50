import type { FastifyInstance } from 'fastify';
import { repeatInBackground } from '../background';
import type { Config } from '../config/schema';
import type { StorageDriver } from '../storage/driver';
import { compactIfGrown } from './snapshot';

/** The server's journal compaction: a check every index.compactInterval seconds (0: none), stopped by close(). */
export function scheduleCompaction(app: FastifyInstance, config: Config, driver: StorageDriver): void {
  if (config.index.path === ':memory:') return; // a snapshot reads the index file on a connection of its own
  repeatInBackground(app, config.index.compactInterval, (signal) =>
    compactIfGrown(config.index.path, driver, { signal }).then(
      (report) => report && app.log.info(report, 'reference journal compacted'),
      (err) => {
        if (!signal.aborted) app.log.error({ err }, 'compacting the reference journal failed; the journal stays whole, the next check tries again');
      },
    ),
  );
}
