import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { FailedLoginLimiter } from '../auth/limiter';
import type { Metrics } from './metrics';
import type { MetricsCredentials } from './settings';

// GET /metrics: on the main port as a fastify route, or on a listener of its own (metrics.addr). Either
// way it is guarded by its own Basic credentials when they are configured, never by the registry's users
// and access rules (a scraper is no registry user), and the password is checked in constant time.

export const METRICS_PATH = '/metrics';
const REALM = 'metrics';

interface Refusal {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Checks a request's Basic credentials against the configured ones; failures are limited per client. */
export class MetricsGuard {
  private readonly user?: Buffer;
  private readonly password?: Buffer;

  constructor(
    credentials: MetricsCredentials | undefined,
    private readonly limiter: FailedLoginLimiter,
  ) {
    if (credentials) {
      this.user = digest(credentials.user);
      this.password = digest(credentials.password);
    }
  }

  /** undefined: let the scrape through; else the answer that refuses it. */
  check(authorization: string | undefined, client: string): Refusal | undefined {
    if (!this.user || !this.password) return undefined;
    const retryAfter = this.limiter.retryAfter(client, REALM);
    if (retryAfter > 0) return { status: 429, headers: { 'retry-after': String(retryAfter) }, body: 'too many failed attempts\n' };
    const given = parseBasic(authorization);
    // Both compared whatever the first gives: the time says nothing of which part was wrong.
    const userOk = timingSafeEqual(digest(given?.user ?? ''), this.user);
    const passwordOk = timingSafeEqual(digest(given?.password ?? ''), this.password);
    if (given && userOk && passwordOk) return undefined;
    if (given) this.limiter.fail(client, REALM);
    return { status: 401, headers: { 'www-authenticate': `Basic realm="${REALM}"` }, body: 'unauthorized\n' };
  }
}

/** Hashed to a fixed length first, so that timingSafeEqual never learns a length either. */
const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  const m = header === undefined ? null : /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? undefined : { user: text.slice(0, colon), password: text.slice(colon + 1) };
}

/** GET /metrics on the registry's own port. */
export function metricsRoute(app: FastifyInstance, metrics: Metrics, guard: MetricsGuard): void {
  app.get(METRICS_PATH, { config: { requestLogLevel: 'debug' } }, async (request, reply) => {
    const refusal = guard.check(request.headers.authorization, request.ip);
    reply.header('cache-control', 'no-store');
    if (refusal) return reply.code(refusal.status).headers(refusal.headers).type('text/plain; charset=utf-8').send(refusal.body);
    return reply.type(metrics.contentType).send(await metrics.scrape());
  });
}

/** A listener that serves only /metrics, on `host:port`; resolves once it listens. */
export async function startMetricsListener(host: string, port: number, metrics: Metrics, guard: MetricsGuard, onError: (err: unknown) => void): Promise<Server> {
  const server = createServer((req, res) => void serve(req, res, metrics, guard).catch((err) => {
    onError(err);
    if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
    res.end('scrape failed\n');
  }));
  // Nobody here uploads anything: a client gets 10 s for its request, whoever it is.
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return server;
}

async function serve(req: IncomingMessage, res: ServerResponse, metrics: Metrics, guard: MetricsGuard): Promise<void> {
  req.resume(); // a body, if any, is not wanted
  const text = (status: number, body: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers });
    res.end(body);
  };
  if ((req.url ?? '').split('?')[0] !== METRICS_PATH) return text(404, `not found: only ${METRICS_PATH} is served here\n`);
  if (req.method !== 'GET' && req.method !== 'HEAD') return text(405, 'method not allowed\n', { allow: 'GET, HEAD' });
  const refusal = guard.check(req.headers.authorization, req.socket.remoteAddress ?? '');
  if (refusal) return text(refusal.status, refusal.body, refusal.headers);
  const body = await metrics.scrape();
  res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/** The guard for this configuration (reads the password file: call it early, so a bad one stops the start first). */
export function metricsGuard(credentials: MetricsCredentials | undefined, failedLogins: { limit: number; window: number; perClient: number }): MetricsGuard {
  return new MetricsGuard(credentials, new FailedLoginLimiter(failedLogins.limit, failedLogins.window * 1000, failedLogins.perClient));
}

/**
 * Serve /metrics: on the main port (a route of `app`), or on `addr` (a listener of its own, closed with
 * `app`). An address that cannot be listened on stops the start, naming metrics.addr.
 */
export async function serveMetrics(app: FastifyInstance, addr: string, metrics: Metrics, guard: MetricsGuard): Promise<void> {
  if (!addr) return metricsRoute(app, metrics, guard);
  const i = addr.lastIndexOf(':');
  const host = addr.slice(0, i).replace(/^\[(.*)\]$/, '$1');
  let server: Server;
  try {
    server = await startMetricsListener(host, Number(addr.slice(i + 1)), metrics, guard, (err) => app.log.error({ err }, 'metrics scrape failed'));
  } catch (err) {
    throw new Error(`metrics.addr: cannot listen on ${addr}: ${(err as Error).message}`);
  }
  app.addHook('onClose', async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });
}
