import type { EndpointStats } from '../notifications/sender';
import type { ProxyStats } from '../proxy/pull-through';
import type { Metrics } from './metrics';

// Series of the subsystems that keep their own counts (stats()): read once per scrape, so counting costs
// them nothing per event. Counters are set from those running totals, which only grow while the process runs.

/** A counter whose value is copied from a running total at scrape time. */
function totalCounter<L extends string>(metrics: Metrics, name: string, help: string, labelNames: readonly L[], read: (set: (labels: Record<L, string>, value: number) => void) => void): void {
  metrics.counter<L>({
    name,
    help,
    labelNames,
    collect() {
      this.reset();
      read((labels, value) => this.inc(labels, value));
    },
  });
}

export function notificationSeries(metrics: Metrics, notifier: { stats(): EndpointStats[] }): void {
  let stats: EndpointStats[] = [];
  metrics.beforeScrape(() => void (stats = notifier.stats()));
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
    totalCounter(metrics, name, help, ['endpoint'], (set) => {
      for (const s of stats) set({ endpoint: s.endpoint }, s[key]);
    });
  totals('registry_notifications_delivered_total', 'Events each endpoint accepted (2xx)', 'delivered');
  totals('registry_notifications_failed_attempts_total', 'POSTs to each endpoint that failed (error status, network error, timeout); retried', 'failedAttempts');
  totals('registry_notifications_dropped_total', 'Events dropped for each endpoint: past notifications.maxAge or maxRetries, or refused with a status not worth retrying', 'dropped');
}

export function proxySeries(metrics: Metrics, proxy: { stats(): ProxyStats }): void {
  let stats: ProxyStats | undefined;
  metrics.beforeScrape(() => void (stats = proxy.stats()));
  totalCounter(metrics, 'registry_proxy_requests_total', 'Pull-through cache lookups by type (manifest, blob) and result (hit, miss)', ['type', 'result'], (set) => {
    if (!stats) return;
    for (const result of ['hits', 'misses'] as const) {
      set({ type: 'manifest', result: result === 'hits' ? 'hit' : 'miss' }, stats[result].manifests);
      set({ type: 'blob', result: result === 'hits' ? 'hit' : 'miss' }, stats[result].blobs);
    }
  });
  totalCounter(metrics, 'registry_proxy_stale_served_total', 'Tags served past their tagTtl because the upstream was unavailable', [], (set) => stats && set({}, stats.stale));
  totalCounter(metrics, 'registry_proxy_joined_downloads_total', 'Blob requests that joined an upstream download already in flight', [], (set) => stats && set({}, stats.joined));
  totalCounter(metrics, 'registry_proxy_upstream_bytes_total', 'Body bytes received from upstream registries', [], (set) => stats && set({}, stats.upstreamBytes));
  totalCounter(metrics, 'registry_proxy_upstream_errors_total', 'Failed upstream requests by kind', ['kind'], (set) => {
    for (const [kind, n] of Object.entries(stats?.upstreamErrors ?? {})) set({ kind }, n);
  });
}
