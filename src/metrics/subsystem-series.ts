import type { EndpointStats } from '../notifications/sender';
import type { ProxyStats } from '../proxy/pull-through';
import { mirrored, type Metrics } from './metrics';

// Series of the subsystems that keep their own counts (stats()): read once per scrape, so counting costs
// them nothing per event. Counters are set from those running totals, which only grow while the process runs.

export function notificationSeries(metrics: Metrics, notifier: { stats(): Promise<EndpointStats[]> }): void {
  let stats: EndpointStats[] = [];
  metrics.beforeScrape(async () => void (stats = await notifier.stats()));
  const perEndpoint = (name: string, help: string, key: 'pending' | 'oldestPendingAgeSeconds') =>
    metrics.gauge({
      name,
      help,
      labelNames: ['endpoint'],
      collect() {
        this.reset();
        for (const s of stats) this.set({ endpoint: s.endpoint }, s[key]);
      },
    });
  perEndpoint('registry_notifications_pending', 'Events in the outbox waiting for each endpoint', 'pending');
  perEndpoint('registry_notifications_oldest_pending_age_seconds', 'Age of the oldest event waiting for each endpoint (0: none)', 'oldestPendingAgeSeconds');
  const totals = (name: string, help: string, key: 'delivered' | 'failedAttempts' | 'dropped') =>
    mirrored(metrics.counter({ name, help, labelNames: ['endpoint'] }), () => stats.map((s) => [{ endpoint: s.endpoint }, s[key]]));
  totals('registry_notifications_delivered_total', 'Events each endpoint accepted (2xx)', 'delivered');
  totals('registry_notifications_failed_attempts_total', 'POSTs to each endpoint that failed (error status, network error, timeout); retried', 'failedAttempts');
  totals('registry_notifications_dropped_total', 'Events dropped for each endpoint: past notifications.maxAge or maxRetries, or refused with a status not worth retrying', 'dropped');
}

/** The index's reads answered from memory (src/index/read-cache.ts), when it keeps any. */
export function indexCacheSeries(metrics: Metrics, cache: { readonly counts: Readonly<Record<'hit' | 'miss' | 'bypass', number>> }): void {
  mirrored(
    metrics.counter({
      name: 'registry_index_cache_reads_total',
      help: 'Manifest and tag-list reads of the index by result: hit (from memory), miss (read and kept), bypass (read: memory could not be vouched for)',
      labelNames: ['result'],
    }),
    () => Object.entries(cache.counts).map(([result, n]) => [{ result }, n]),
  );
}

export function proxySeries(metrics: Metrics, proxy: { stats(): ProxyStats }): void {
  let stats: ProxyStats | undefined;
  metrics.beforeScrape(() => void (stats = proxy.stats()));
  mirrored(metrics.counter({ name: 'registry_proxy_requests_total', help: 'Pull-through cache lookups by type (manifest, blob) and result (hit, miss)', labelNames: ['type', 'result'] }), () =>
    stats
      ? [
          [{ type: 'manifest', result: 'hit' }, stats.hits.manifests],
          [{ type: 'manifest', result: 'miss' }, stats.misses.manifests],
          [{ type: 'blob', result: 'hit' }, stats.hits.blobs],
          [{ type: 'blob', result: 'miss' }, stats.misses.blobs],
        ]
      : [],
  );
  const total = (name: string, help: string, read: (s: ProxyStats) => number) =>
    mirrored(metrics.counter({ name, help }), () => (stats ? [[{}, read(stats)]] : []));
  total('registry_proxy_stale_served_total', 'Tags served past their tagTtl because the upstream was unavailable', (s) => s.stale);
  total('registry_proxy_joined_downloads_total', 'Blob requests that joined an upstream download already in flight', (s) => s.joined);
  total('registry_proxy_upstream_bytes_total', 'Body bytes received from upstream registries', (s) => s.upstreamBytes);
  mirrored(metrics.counter({ name: 'registry_proxy_upstream_errors_total', help: 'Failed upstream requests by kind', labelNames: ['kind'] }), () =>
    Object.entries(stats?.upstreamErrors ?? {}).map(([kind, n]) => [{ kind }, n]),
  );
}
