import { randomUUID } from 'node:crypto';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { AccessControl } from './auth/access-control';
import { authPlugin } from './auth/plugin';
import type { Config } from './config/schema';
import { RegistryError, errorBodyFor, toRegistryError } from './errors';
import { IMPLEMENTED_METHODS, clientErrorHandler, refuseConnect } from './http/client-errors';
import type { RegistryContext } from './context';
import { openIndex } from './index/open';
import { repeatInBackground } from './background';
import { MetadataIndex } from './index/metadata-index';
import { V1Index } from './index/v1-index';
import { V2Index } from './index/v2-index';
import { WalSync } from './index/wal-sync';
import { fastifyTrustProxy } from './http/trust-proxy';
import { unauthenticatedDeadline } from './http/unauthenticated-deadline';
import { loggerOptions } from './logger';
import { healthRoutes } from './routes/health';
import { pingRoutes, v1Routes } from './routes/v1';
import { tokenRoutes } from './routes/token';
import { v2Routes } from './routes/v2';
import { BlobStore } from './storage/blob-store';
import { createDriver } from './storage/factory';
import { V1Registry } from './v1/registry';
import { V2Registry } from './v2/registry';
import { V1ToV2Bridge } from './bridge/v1-to-v2';
import { V2ToV1Bridge } from './bridge/v2-to-v1';
import { GarbageCollector } from './gc/collector';
import { gcSettings } from './gc/run';
import { scheduleGarbageCollection } from './gc/schedule';
import { BridgeIndex } from './index/bridge-index';
import { GcIndex } from './index/gc-index';
import { RepositoryIndex } from './index/repository-index';
import { RetentionIndex } from './index/retention-index';
import { UsageIndex } from './index/usage-index';
import { Quotas } from './quota/quotas';
import { PullRecorder } from './retention/pull-recorder';
import { Retention } from './retention/retention';
import { scheduleRetention } from './retention/schedule';
import { RefJournal } from './refs/journal';
import { scheduleCompaction } from './refs/schedule';
import { checkIndexPresent } from './refs/startup-check';
import { version } from './version';
import { BrowseIndex } from './index/browse-index';
import { uiRoutes } from './ui/routes';
import { splitAddr } from './config/load';
import { NotificationIndex } from './index/notification-index';
import { Notifier } from './notifications/notifier';
import { Metrics } from './metrics/metrics';
import { metricsCredentials } from './metrics/settings';
import { metricsGuard, serveMetrics } from './metrics/endpoint';
import { declareRouteLabel, instrumentHttp } from './metrics/http';
import { instrumentDriver } from './metrics/storage-driver';
import { indexTimings, registrySeries } from './metrics/registry-series';
import { indexCacheSeries, notificationSeries, proxySeries } from './metrics/subsystem-series';
import { StatsIndex } from './index/stats-index';
import { ProxyIndex } from './index/proxy-index';
import { PullThroughCache } from './proxy/pull-through';

export interface BuildOptions {
  /** Override fastify's logger (tests pass false). */
  logger?: FastifyServerOptions['logger'];
}

/** Build the registry application (not listening). The caller owns listen() and close(). */
export async function buildApp(config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? loggerOptions(config),
    logController: new LogController({ disableRequestLogging: true }),
    trustProxy: fastifyTrustProxy(config.http.trustProxy),
    genReqId: () => randomUUID(),
    requestTimeout: 0, // multi-GB layers take as long as they take
    keepAliveTimeout: 75_000,
    // While stopping, a request that still arrives on an open connection is served, not refused (see
    // closeConnectionsAsTheyIdle): a proxy cannot retry a streamed upload elsewhere once it has sent it.
    return503OnClosing: false,
    bodyLimit: config.http.maxJsonBody,
    // Duplicate slashes are not merged: `a//b` is no repository name, and must not quietly become `a/b`.
    routerOptions: { maxParamLength: 1024, ignoreTrailingSlash: true, ignoreDuplicateSlashes: false },
    clientErrorHandler,
    // A URL that does not even decode: answer in the error format of the protocol asked for.
    frameworkErrors: (error, request, reply) => {
      const e = new RegistryError('BAD_REQUEST', `malformed URL: ${error.message}`);
      reply.code(400 as never).type('application/json').send(errorBodyFor(request.url, e) as never);
    },
  });

  refuseConnect(app.server);
  // A method the parser knows but no route implements (OPTIONS, PROPFIND, ...): 501, in the protocol's format.
  app.addHook('onRequest', async (request) => {
    if (!IMPLEMENTED_METHODS.has(request.method)) throw new RegistryError('UNSUPPORTED', `${request.method} is not implemented`, { status: 501 });
  });

  // Metrics off: no series are served and nothing per request or per storage call is measured.
  const metrics = config.metrics.enabled ? Metrics.create() : Metrics.disabled();
  const guard = metrics.enabled ? metricsGuard(metricsCredentials(config), config.auth.failedLogins) : undefined;
  const driver = metrics.enabled ? instrumentDriver(await createDriver(config), metrics) : await createDriver(config);
  if (config.index.driver === 'sqlite') await checkIndexPresent(config.index.path, driver);
  const { database: db, sqlite, leadership } = await openIndex(config.index, app.log);
  // The refs journal and the WAL sync are SQLite's: a PostgreSQL commit is durable, and backed up with its own tools.
  const journal = sqlite ? new RefJournal(sqlite, driver) : undefined;
  const index = new MetadataIndex(db);
  const timings = metrics.enabled ? indexTimings(metrics) : undefined;
  if (timings) index.onTransaction = timings.transaction;
  const s3 = config.storage.s3;
  const blobs = new BlobStore(driver, index, config.storage.driver === 's3' && s3.redirect ? s3.redirectExpiry : 0, (err) =>
    app.log.error({ err }, 'deleting a staged upload failed; the stale-upload purge will retry'),
  );
  app.addHook('onClose', async () => driver.close?.());
  const access = new AccessControl(config, app.log);
  const gc = new GarbageCollector(new GcIndex(db), driver, gcSettings(config));
  const repositories = new RepositoryIndex(db, index);
  const quotas = new Quotas(config.quotas, new UsageIndex(db));
  const retentionIndex = new RetentionIndex(db);
  const retention = new Retention(config.retention.policies, retentionIndex);
  // Pull times matter only to keepPulledWithin: without such a policy nothing is recorded.
  const pulls = config.retention.policies.some((p) => p.keepPulledWithin !== undefined)
    ? new PullRecorder(retentionIndex, config.retention.pullFlush * 1000, (err) => app.log.error({ err }, 'recording pull times failed'))
    : undefined;
  const v1Index = new V1Index(db, index);
  const v2Index = new V2Index(db, index);
  // Webhooks (docs/notifications.md): nothing is built, and no request pays anything, without an enabled endpoint.
  const notifier = config.notifications.endpoints.some((e) => e.enabled)
    ? new Notifier(config.notifications, new NotificationIndex(db), app.log, { port: splitAddr(config.http.addr).port })
    : undefined;
  const v2 = new V2Registry(index, v2Index, blobs, repositories, { gcDelayMs: config.gc.delay * 1000, quotas, pulls, events: notifier });
  const bridge =
    config.protocols.bridge && config.protocols.v1 && config.protocols.v2
      ? new V1ToV2Bridge(v1Index, v2Index, v2, blobs, app.log)
      : undefined;
  const fromV2 = bridge ? new V2ToV1Bridge(new BridgeIndex(db), v2Index, blobs, config.protocols.bridgePlatform) : undefined;
  const ctx: RegistryContext = {
    config,
    access,
    index,
    blobs,
    v1: new V1Registry(index, v1Index, blobs, repositories, { quotas, analyzeLayers: bridge !== undefined, fromV2, onUnanalyzedLayer: (d) => bridge?.analyzeSoon(d), events: notifier }),
    v2,
    bridge,
    gc,
    retention,
    quotas,
    notifier,
    metrics,
    leadership,
    proxy:
      config.proxy.upstreams.length > 0
        ? new PullThroughCache(config.proxy.upstreams, { v2, blobs, index: new ProxyIndex(db), log: app.log, maxManifestBytes: config.http.maxJsonBody })
        : undefined,
  };
  app.decorate('registry', ctx);
  if (metrics.enabled) {
    registrySeries(metrics, { blobs, access, gc, retention, quotas, stats: new StatsIndex(db) });
    if (notifier) notificationSeries(metrics, notifier);
    if (ctx.proxy) proxySeries(metrics, ctx.proxy);
    if (db.cache) indexCacheSeries(metrics, db.cache);
  }
  app.addHook('onClose', async () => ctx.proxy?.close());
  // Without authentication every request is anonymous and may upload: then only headers have a deadline.
  await app.register(unauthenticatedDeadline, { timeoutMs: config.http.unauthenticatedTimeout * 1000, bodies: access.enabled });
  await app.register(authPlugin, { access });
  app.addHook('onClose', async () => {
    await leadership.close(); // first: leading again now would restart the notifier and background work
    await notifier?.close(); // an attempt in flight is aborted: its events stay queued for the next start
    await bridge?.settle(); // tags being bridged, layers being analyzed: their records go out with the journal's last
    await pulls?.close();
    await journal?.close().catch((err) => app.log.error({ err }, 'writing the last reference records failed; the next start writes them'));
    await blobs.settle(); // staged copies still being deleted, before their rows can no longer be
    await index.close();
  });
  closeConnectionsAsTheyIdle(app);

  if (sqlite && journal) {
    await journal.start();
    answerWritesOnceDurable(app, new WalSync(sqlite, undefined, timings?.walSync), journal, timings?.durableWait);
  }
  declareRouteLabel(app);
  if (metrics.enabled) instrumentHttp(app, metrics);

  // One log line per request: id, method, route, status, bytes, duration. Nothing else of the request.
  app.addHook('onResponse', async (request, reply) => {
    request.log[request.routeOptions.config?.requestLogLevel ?? 'info'](
      {
        method: request.method,
        route: request.routeOptions.url ?? 'unmatched',
        url: request.url.split('?')[0],
        status: reply.statusCode,
        bytesIn: Number(request.headers['content-length'] ?? 0) || undefined,
        bytesOut: Number(reply.getHeader('content-length') ?? 0) || undefined,
        ms: Math.round(reply.elapsedTime * 10) / 10,
      },
      'request',
    );
  });

  await app.register(healthRoutes); // /healthz, /readyz: no auth, logged at debug
  if (config.protocols.v1) {
    await app.register((instance) => pingRoutes(instance, version));
    await app.register(v1Routes, { prefix: '/v1' });
  }
  if (config.protocols.v2) await app.register(v2Routes, { prefix: '/v2' });
  if (access.tokensEnabled) await app.register(tokenRoutes);
  if (config.ui.enabled) {
    await app.register(uiRoutes, { prefix: config.ui.pathPrefix, browse: new BrowseIndex(db) });
  }
  if (guard) await serveMetrics(app, config.metrics.addr, metrics, guard);

  await purgeStaleUploads(app);
  await scheduleGarbageCollection(app, gc, config.gc.interval);
  scheduleRetention(app, retention, config.retention.interval, config.retention.dryRun);
  if (sqlite) scheduleCompaction(app, config, driver); // the refs journal is SQLite's
  if (notifier) {
    // Events go out from one replica at a time, in order: the leader's.
    leadership.onChange((leads) => (leads ? notifier.start() : void notifier.pause()));
    if (leadership.held) notifier.start();
  }
  return app;
}

/**
 * A write is answered only once its index transactions are on disk (see WalSync) and the reference records
 * they made are in storage (see RefJournal), both at once. GET and HEAD do not
 * write the index, and need not wait for other requests' writes. If the sync fails, the write was
 * committed but may not survive a power loss: the client gets an error (507 if the disk is full, else
 * 500), without the headers of the success it would have been.
 */
function answerWritesOnceDurable(app: FastifyInstance, walSync: WalSync, journal: RefJournal, observeWait?: (seconds: number) => void): void {
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.method === 'GET' || request.method === 'HEAD') return payload;
    const start = observeWait && process.hrtime.bigint();
    const [wal, refs] = await Promise.allSettled([walSync.flush(), journal.flush()]);
    if (start) observeWait(Number(process.hrtime.bigint() - start) / 1e9);
    const failure =
      wal.status === 'rejected'
        ? { err: wal.reason, what: 'the index could not be synced to disk' }
        : refs.status === 'rejected'
          ? { err: refs.reason, what: 'the reference journal could not be written to storage' }
          : undefined;
    if (!failure) return payload;
    request.log.error({ err: failure.err }, failure.what);
    const known = toRegistryError(failure.err);
    const e = known.code === 'INTERNAL' ? new RegistryError('INTERNAL', failure.what) : known;
    for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name);
    reply.code(e.status as never).type('application/json');
    return JSON.stringify(errorBodyFor(request.url, e));
  });
}

/**
 * On close, node stops listening and closes the connections idle at that moment; keep-alive connections
 * whose request finishes later would otherwise hold the close for the whole keep-alive timeout. Every
 * response from then on says `Connection: close`, so a proxy (nginx's upstream keep-alive pool) drops the
 * connection after it instead of sending the next request down a connection about to close: behind a load
 * balancer a stopping replica finishes what it has and gets nothing new (a rolling restart fails no request).
 */
function closeConnectionsAsTheyIdle(app: FastifyInstance): void {
  let timer: NodeJS.Timeout | undefined;
  let closing = false;
  app.addHook('onSend', async (_request, reply, payload) => {
    if (closing) reply.raw.shouldKeepAlive = false;
    return payload;
  });
  app.addHook('preClose', async () => {
    closing = true;
    app.server.closeIdleConnections();
    timer = setInterval(() => app.server.closeIdleConnections(), 50);
    timer.unref();
  });
  app.addHook('onClose', async () => clearInterval(timer));
}

/** Remove uploads abandoned longer than uploads.purgeAfter, now and then every few minutes. */
async function purgeStaleUploads(app: FastifyInstance): Promise<void> {
  const { blobs, config } = app.registry;
  const maxAge = config.uploads.purgeAfter * 1000;
  const run = async () => {
    try {
      const n = await blobs.purgeStaleUploads(maxAge);
      if (n > 0) app.log.info({ purged: n }, 'purged stale uploads');
    } catch (err) {
      app.log.error({ err }, 'stale upload purge failed');
    }
  };
  // With replicas, another one's uploads in progress look the same: there, only age ends them.
  if (config.index.driver === 'sqlite') {
    const removed = await blobs.removeUnresumable();
    if (removed.uploads > 0) app.log.info(removed, 'removed staged uploads that can never resume (left by a stop mid-request)');
  }
  if (app.registry.leadership.held) await run();
  repeatInBackground(app, Math.min(maxAge, 10 * 60 * 1000) / 1000, run);
}
