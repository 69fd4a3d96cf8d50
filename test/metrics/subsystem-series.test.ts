import t from 'tap';
import { Metrics } from '../../src/metrics/metrics';
import { indexCacheSeries, notificationSeries, proxySeries } from '../../src/metrics/subsystem-series';
import { freePort } from '../helpers/process';
import { parsePrometheusText, valueOf } from '../helpers/prom-text';
import { startRegistry } from '../helpers/server';
import { buildImage, pushImage } from '../helpers/v2';

// Notification and pull-through cache series: their stats() read at scrape time, and wired in by the server.

t.test('series copy the subsystems\' running totals at each scrape', async (t) => {
  const metrics = Metrics.disabled();
  const endpoint = { endpoint: 'ci', pending: 3, oldestPendingAgeSeconds: 12, delivered: 40, failedAttempts: 5, dropped: 1, lastError: 'HTTP 500' };
  notificationSeries(metrics, { stats: async () => [endpoint] });
  const proxy = { hits: { manifests: 7, blobs: 20 }, misses: { manifests: 2, blobs: 4 }, stale: 1, joined: 3, upstreamBytes: 1234, upstreamErrors: { timeout: 2 } as never };
  proxySeries(metrics, { stats: () => proxy });

  let f = parsePrometheusText(await metrics.scrape());
  t.equal(valueOf(f, 'registry_notifications_pending', { endpoint: 'ci' }), 3);
  t.equal(valueOf(f, 'registry_notifications_oldest_pending_age_seconds', { endpoint: 'ci' }), 12);
  t.equal(valueOf(f, 'registry_notifications_delivered_total', { endpoint: 'ci' }), 40);
  t.equal(valueOf(f, 'registry_notifications_failed_attempts_total', { endpoint: 'ci' }), 5);
  t.equal(valueOf(f, 'registry_notifications_dropped_total', { endpoint: 'ci' }), 1);
  t.equal(f.get('registry_notifications_delivered_total')!.type, 'counter');
  t.equal(valueOf(f, 'registry_proxy_requests_total', { type: 'blob', result: 'hit' }), 20);
  t.equal(valueOf(f, 'registry_proxy_requests_total', { type: 'manifest', result: 'miss' }), 2);
  t.equal(valueOf(f, 'registry_proxy_upstream_bytes_total'), 1234);
  t.equal(valueOf(f, 'registry_proxy_upstream_errors_total', { kind: 'timeout' }), 2);

  endpoint.delivered = 41;
  endpoint.pending = 0;
  proxy.hits.blobs = 21;
  f = parsePrometheusText(await metrics.scrape());
  t.equal(valueOf(f, 'registry_notifications_delivered_total', { endpoint: 'ci' }), 41, 'counters follow the totals, not add to them');
  t.equal(valueOf(f, 'registry_notifications_pending', { endpoint: 'ci' }), 0);
  t.equal(valueOf(f, 'registry_proxy_requests_total', { type: 'blob', result: 'hit' }), 21);
});

t.test('the server serves them when notifications and the proxy are configured', async (t) => {
  const closed = `http://127.0.0.1:${await freePort()}`;
  const reg = await startRegistry(t, {
    metrics: { enabled: true },
    notifications: { endpoints: [{ name: 'hook', url: closed }] } as never,
    proxy: { upstreams: [{ prefix: 'up/', url: closed, timeout: 1 }] as never },
  });
  const miss = await fetch(`${reg.url}/v2/up/app/manifests/v1`);
  t.equal(miss.status, 503, 'a miss with the upstream down');
  await miss.arrayBuffer();
  const text = await (await fetch(`${reg.url}/metrics`)).text();
  const f = parsePrometheusText(text);
  t.equal(valueOf(f, 'registry_notifications_pending', { endpoint: 'hook' }), 0, 'the endpoint is listed');
  t.equal(valueOf(f, 'registry_proxy_upstream_errors_total', { kind: 'connection' }), 1, 'the refused connection is counted');
  t.equal(valueOf(f, 'registry_proxy_requests_total', { type: 'manifest', result: 'hit' }), 0, 'the cache series are there');
});

t.test('the index\'s reads from memory: counts copied at each scrape, and served by the server', async (t) => {
  const metrics = Metrics.disabled();
  const counts = { hit: 5, miss: 2, bypass: 1 };
  indexCacheSeries(metrics, { counts });
  const f = parsePrometheusText(await metrics.scrape());
  for (const [result, n] of Object.entries(counts)) t.equal(valueOf(f, 'registry_index_cache_reads_total', { result }), n, result);

  const reg = await startRegistry(t, { metrics: { enabled: true } });
  await pushImage(reg.url, 'team/app', 'v1', buildImage({ layers: 1, layerBytes: 512 }));
  for (let i = 0; i < 3; i++) await (await fetch(`${reg.url}/v2/team/app/tags/list`)).arrayBuffer();
  const served = parsePrometheusText(await (await fetch(`${reg.url}/metrics`)).text());
  t.ok(valueOf(served, 'registry_index_cache_reads_total', { result: 'hit' })! >= 2, 'tag lists read again came from memory');
  t.ok(valueOf(served, 'registry_index_cache_reads_total', { result: 'miss' })! >= 1);
});
