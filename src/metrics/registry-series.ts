import type { AccessControl } from '../auth/access-control';
import type { GarbageCollector } from '../gc/collector';
import type { StatsIndex, StoreTotals } from '../index/stats-index';
import type { Quotas, QuotaStatus } from '../quota/quotas';
import type { Retention } from '../retention/retention';
import type { BlobStore } from '../storage/blob-store';
import { version } from '../version';
import { FAST_BUCKETS, mirrored, type Metrics } from './metrics';

// The series read at scrape time from what the registry's parts count anyway (plain numbers they keep
// whether or not metrics are on) and from one cached index query: nothing here runs per request.

/** How long one reading of the index totals serves scrapes: several Prometheus servers scraping cost one query. */
export const INDEX_TOTALS_TTL_MS = 10_000;

export interface RegistryParts {
  blobs: BlobStore;
  access: AccessControl;
  gc: GarbageCollector;
  retention: Retention;
  quotas: Quotas;
  stats: StatsIndex;
}

/** Index and durable-write timings, observed as they happen (the hooks cost one hrtime pair each). */
export interface IndexTimings {
  transaction(seconds: number): void;
  walSync(seconds: number): void;
  durableWait(seconds: number): void;
}

export function indexTimings(metrics: Metrics): IndexTimings {
  const transaction = metrics.histogram({
    name: 'registry_index_transaction_duration_seconds',
    help: 'Time index write transactions took, waiting for the write lock included',
    buckets: FAST_BUCKETS,
  });
  const walSync = metrics.histogram({
    name: 'registry_index_wal_sync_duration_seconds',
    help: 'Time each fdatasync of the index WAL took (one sync serves every write committed before it)',
    buckets: FAST_BUCKETS,
  });
  const durableWait = metrics.histogram({
    name: 'registry_write_durable_wait_seconds',
    help: 'Time a write request waited after its handler for its index changes and reference records to be durable',
    buckets: FAST_BUCKETS,
  });
  return {
    transaction: (s) => transaction.observe(s),
    walSync: (s) => walSync.observe(s),
    durableWait: (s) => durableWait.observe(s),
  };
}

export function registrySeries(metrics: Metrics, parts: RegistryParts): void {
  const { blobs, access, gc, retention, quotas, stats } = parts;

  metrics.gauge({ name: 'registry_info', help: 'Always 1; the version label says which registry this is', labelNames: ['version'] }).set({ version }, 1);

  // ---- the store, from the index (cached) ----
  let totals: StoreTotals = { blobs: 0, blobBytes: 0, uploads: 0, uploadBytes: 0, repositories: 0 };
  let quotaStatus: QuotaStatus[] = [];
  let readAt = -Infinity;
  metrics.beforeScrape(async () => {
    if (Date.now() - readAt < INDEX_TOTALS_TTL_MS) return;
    totals = await stats.totals();
    quotaStatus = await quotas.status();
    readAt = Date.now();
  });
  const fromTotals = (name: string, help: string, key: keyof StoreTotals) =>
    metrics.gauge({ name, help, collect() { this.set(totals[key]); } });
  fromTotals('registry_blobs', 'Blobs in the store (each counted once, however many repositories use it)', 'blobs');
  fromTotals('registry_blob_bytes', 'Bytes of the blobs in the store', 'blobBytes');
  fromTotals('registry_repositories', 'Repositories in the index', 'repositories');
  fromTotals('registry_uploads_open', 'Unfinished uploads (in progress or abandoned, until uploads.purgeAfter)', 'uploads');
  fromTotals('registry_uploads_open_bytes', 'Bytes staged by unfinished uploads', 'uploadBytes');
  metrics.gauge({
    name: 'registry_quota_limit_bytes',
    help: 'Limit of each configured quota (label: its repository glob)',
    labelNames: ['quota'],
    collect() {
      this.reset();
      for (const q of quotaStatus) this.set({ quota: q.repository }, q.limit);
    },
  });
  metrics.gauge({
    name: 'registry_quota_used_bytes',
    help: 'Bytes the repositories of each configured quota use together (label: its repository glob)',
    labelNames: ['quota'],
    collect() {
      this.reset();
      for (const q of quotaStatus) this.set({ quota: q.repository }, q.used);
    },
  });

  // ---- uploads, live ----
  metrics.gauge({ name: 'registry_uploads_in_flight', help: 'Upload requests streaming bytes into storage now', collect() { this.set(blobs.appendsInFlight().uploads); } });
  metrics.gauge({
    name: 'registry_uploads_in_flight_bytes',
    help: 'Bytes the upload requests streaming now have received so far',
    collect() { this.set(blobs.appendsInFlight().bytes); },
  });
  mirrored(metrics.counter({ name: 'registry_upload_bytes_total', help: 'Bytes stored through uploads and one-shot bodies (v2 blob uploads, manifests, v1 layers and image JSON)' }), () => [[{}, blobs.counts.appendedBytes]]);
  mirrored(metrics.counter({ name: 'registry_uploads_completed_total', help: 'Uploads and one-shot bodies that became a blob (or found it stored already)' }), () => [
    [{}, blobs.counts.completed],
  ]);

  // ---- authentication and refusals ----
  mirrored(
    metrics.counter({
      name: 'registry_auth_attempts_total',
      help: 'Credentials checked, by scheme (basic, bearer, v1token) and result (success, failure)',
      labelNames: ['scheme', 'result'],
    }),
    () =>
      Object.entries(access.counts.results).flatMap(([scheme, r]) => [
        [{ scheme, result: 'success' }, r.success],
        [{ scheme, result: 'failure' }, r.failure],
      ]),
  );
  mirrored(
    metrics.counter({
      name: 'registry_rate_limited_requests_total',
      help: 'Requests refused by a limit (failed_logins, password_checks, password_queue, open_uploads)',
      labelNames: ['reason'],
    }),
    () => [...Object.entries(access.counts.limited).map(([reason, n]) => [{ reason }, n] as [{ reason: string }, number]), [{ reason: 'open_uploads' }, blobs.counts.refusedOpen]],
  );

  // ---- background jobs in this process ----
  mirrored(
    metrics.counter({ name: 'registry_gc_runs_total', help: 'Garbage collections run by this server, by result (success, failure)', labelNames: ['result'] }),
    () => [[{ result: 'success' }, gc.counts.runs], [{ result: 'failure' }, gc.counts.failures]],
  );
  metrics.gauge({
    name: 'registry_gc_last_success_timestamp_seconds',
    help: 'When this server\'s last garbage collection succeeded, in Unix seconds (0: none since start)',
    collect() { this.set(gc.counts.lastSuccessMs / 1000); },
  });
  metrics.gauge({ name: 'registry_gc_last_reclaimed_bytes', help: 'Bytes the last successful garbage collection freed', collect() { this.set(gc.counts.lastReclaimedBytes); } });
  mirrored(metrics.counter({ name: 'registry_gc_reclaimed_bytes_total', help: 'Bytes garbage collections of this server freed' }), () => [[{}, gc.counts.reclaimedBytes]]);
  mirrored(
    metrics.counter({ name: 'registry_retention_runs_total', help: 'Retention runs of this server, by result (success, failure)', labelNames: ['result'] }),
    () => [[{ result: 'success' }, retention.counts.runs], [{ result: 'failure' }, retention.counts.failures]],
  );
  metrics.gauge({
    name: 'registry_retention_last_success_timestamp_seconds',
    help: 'When this server\'s last retention run succeeded, in Unix seconds (0: none since start)',
    collect() { this.set(retention.counts.lastSuccessMs / 1000); },
  });
  mirrored(
    metrics.counter({ name: 'registry_retention_deleted_total', help: 'What retention runs of this server deleted, by kind (tag, manifest)', labelNames: ['kind'] }),
    () => [[{ kind: 'tag' }, retention.counts.tagsDeleted], [{ kind: 'manifest' }, retention.counts.manifestsDeleted]],
  );
}
