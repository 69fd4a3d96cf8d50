import type { AccessControl } from './auth/access-control';
import type { Leadership } from './index/leader';
import type { Config } from './config/schema';
import type { MetadataIndex } from './index/metadata-index';
import type { BlobStore } from './storage/blob-store';
import type { V1Registry } from './v1/registry';
import type { V2Registry } from './v2/registry';
import type { V1ToV2Bridge } from './bridge/v1-to-v2';
import type { GarbageCollector } from './gc/collector';
import type { Quotas } from './quota/quotas';
import type { Retention } from './retention/retention';
import type { Notifier } from './notifications/notifier';
import type { Metrics } from './metrics/metrics';
import type { PullThroughCache } from './proxy/pull-through';

/** Everything a route may use, built once in app.ts and decorated onto the fastify instance. */
export interface RegistryContext {
  config: Config;
  access: AccessControl;
  index: MetadataIndex;
  blobs: BlobStore;
  v1: V1Registry;
  v2: V2Registry;
  /** The v1 -> v2 bridge (protocols.bridge, with both protocols on). */
  bridge?: V1ToV2Bridge;
  gc: GarbageCollector;
  retention: Retention;
  quotas: Quotas;
  /** Webhook notifications (an enabled endpoint configured): stats() per endpoint, for metrics. */
  notifier?: Notifier;
  /** Where subsystems add their Prometheus series (src/metrics/metrics.ts); served only with metrics.enabled. */
  metrics: Metrics;
  /** The pull-through cache (proxy.upstreams), when upstreams are configured. */
  proxy?: PullThroughCache;
  /** Whether this process runs the background work (always, on SQLite; one replica at a time on PostgreSQL). */
  leadership: Leadership;
}

declare module 'fastify' {
  interface FastifyInstance {
    registry: RegistryContext;
  }
}
