import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { LATENCY_BUCKETS, type Metrics } from './metrics';

// Requests, their latency and the bytes they moved, counted once per request when its response ends.
// Labels are the route pattern (never the URL: no repository names or digests), the method and the status
// code. Label objects are made once per (route, method, code) and reused, so counting allocates nothing.

declare module 'fastify' {
  interface FastifyRequest {
    /**
     * The route pattern for metrics, where one fastify route serves several (the v2 and v1 wildcard
     * routes set it once they have parsed the path); else the fastify route's URL.
     */
    routeLabel?: string;
  }
}

export type Protocol = 'v1' | 'v2' | 'other';

/** Requests no route matched are counted under this route label. */
export const UNMATCHED = 'unmatched';

/** Which protocol a path (or route pattern) belongs to. */
export function protocolOf(path: string): Protocol {
  if (path.startsWith('/v2/') || path === '/v2') return 'v2';
  if (path.startsWith('/v1/') || path === '/v1' || path === '/_ping') return 'v1';
  return 'other';
}

/** Always declared (with metrics off too), so requests keep one shape. */
export function declareRouteLabel(app: FastifyInstance): void {
  app.decorateRequest('routeLabel', undefined);
}

/** Socket byte counters as of the end of the socket's previous response. */
const READ_BEFORE = Symbol('bytesReadBefore');
const WRITTEN_BEFORE = Symbol('bytesWrittenBefore');
type MeteredSocket = Socket & { [READ_BEFORE]?: number; [WRITTEN_BEFORE]?: number };

interface MethodSeries {
  duration: { method: string; route: string };
  byCode: Map<number, { method: string; route: string; code: string }>;
}

/** Count every request of `app` on `metrics`. */
export function instrumentHttp(app: FastifyInstance, metrics: Metrics): void {
  const requests = metrics.counter({
    name: 'registry_http_requests_total',
    help: 'HTTP requests answered, by method, route pattern and status code',
    labelNames: ['method', 'route', 'code'],
  });
  const duration = metrics.histogram({
    name: 'registry_http_request_duration_seconds',
    help: 'Time from a request\'s arrival to the end of its response, by method and route pattern',
    labelNames: ['method', 'route'],
    buckets: LATENCY_BUCKETS,
  });
  const received = metrics.counter({
    name: 'registry_http_received_bytes_total',
    help: 'Bytes read from clients (request lines, headers and bodies), by protocol (v1, v2, other)',
    labelNames: ['protocol'],
  });
  const sent = metrics.counter({
    name: 'registry_http_sent_bytes_total',
    help: 'Bytes written to clients (status lines, headers and bodies), by protocol (v1, v2, other)',
    labelNames: ['protocol'],
  });
  const protocolLabels: Record<Protocol, { protocol: Protocol }> = { v1: { protocol: 'v1' }, v2: { protocol: 'v2' }, other: { protocol: 'other' } };
  for (const labels of Object.values(protocolLabels)) {
    received.inc(labels, 0); // every protocol shows, from the first scrape
    sent.inc(labels, 0);
  }

  const routes = new Map<string, Map<string, MethodSeries>>();
  const seriesOf = (route: string, method: string): MethodSeries => {
    let byMethod = routes.get(route);
    if (!byMethod) routes.set(route, (byMethod = new Map()));
    let series = byMethod.get(method);
    if (!series) byMethod.set(method, (series = { duration: { method, route }, byCode: new Map() }));
    return series;
  };

  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const route = request.routeLabel ?? request.routeOptions.url ?? UNMATCHED;
    const series = seriesOf(route, request.method);
    const code = reply.statusCode;
    let labels = series.byCode.get(code);
    if (!labels) series.byCode.set(code, (labels = { method: request.method, route, code: String(code) }));
    requests.inc(labels);
    duration.observe(series.duration, reply.elapsedTime / 1000);

    // With keep-alive, a socket's counters grow request after request: this one moved what they grew by
    // since the socket's previous response ended (HTTP/1.1 without pipelining: one request at a time).
    const socket = request.raw.socket as MeteredSocket | null;
    if (socket) {
      const protocol = protocolLabels[protocolOf(route === UNMATCHED ? request.url : route)];
      const read = socket.bytesRead;
      const written = socket.bytesWritten;
      received.inc(protocol, read - (socket[READ_BEFORE] ?? 0));
      sent.inc(protocol, written - (socket[WRITTEN_BEFORE] ?? 0));
      socket[READ_BEFORE] = read;
      socket[WRITTEN_BEFORE] = written;
    }
    done();
  });
}
