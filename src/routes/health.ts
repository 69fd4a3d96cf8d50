import type { FastifyInstance, FastifyReply } from 'fastify';

// Probes for orchestrators, load balancers and the image's HEALTHCHECK. Both are unauthenticated
// (they never look at credentials) and are served whatever protocols are enabled. Their request
// log lines go out at debug level (see `requestLogLevel`), so a probe every few seconds does not
// flood an info-level log.

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Level of this route's one request log line in app.ts (default info). */
    requestLogLevel?: 'debug' | 'info';
  }
}

/** How long a readiness check may take before it counts as failed (a hung S3 endpoint, NFS, ...). */
const CHECK_TIMEOUT_MS = 5000;

type CheckResult = 'ok' | 'failed' | 'timeout';

async function check(fn: () => unknown): Promise<{ result: CheckResult; err?: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), CHECK_TIMEOUT_MS);
  });
  try {
    const outcome = await Promise.race([Promise.resolve().then(fn).then(() => 'ok' as const), timeout]);
    return { result: outcome };
  } catch (err) {
    return { result: 'failed', err };
  } finally {
    clearTimeout(timer);
  }
}

const noStore = (reply: FastifyReply) => reply.header('cache-control', 'no-store');

export async function healthRoutes(app: FastifyInstance): Promise<void> {
  const config = { requestLogLevel: 'debug' } as const;

  /** Liveness: the process is up and its event loop answers. Checks nothing else on purpose. */
  app.get('/healthz', { config }, async (_request, reply) => {
    noStore(reply);
    return { status: 'ok' };
  });

  // A stopping process still serves the requests that reach it, but asks to be taken out of rotation.
  let stopping = false;
  app.addHook('preClose', async () => {
    stopping = true;
  });

  /**
   * Readiness: the metadata index answers a query and the storage backend answers its ping.
   * 200 {"status":"ok","checks":{...}} or 503 naming the part that failed. Error details go to the
   * log only (this endpoint is anonymous; paths and backend messages stay private).
   */
  app.get('/readyz', { config }, async (request, reply) => {
    if (stopping) {
      noStore(reply).code(503);
      return { status: 'stopping', checks: {} };
    }
    const { index, blobs } = app.registry;
    const [idx, storage] = await Promise.all([check(() => index.ping()), check(() => blobs.driver.ping())]);
    const checks = { index: idx.result, storage: storage.result };
    const ready = idx.result === 'ok' && storage.result === 'ok';
    if (!ready) {
      request.log.warn(
        { checks, indexError: idx.err, storageError: storage.err, driver: blobs.driver.name },
        'readiness check failed',
      );
    }
    noStore(reply).code(ready ? 200 : 503);
    return { status: ready ? 'ok' : 'unavailable', checks };
  });
}
