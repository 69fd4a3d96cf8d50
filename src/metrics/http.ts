import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CellCounter, CellHistogram, type CountCell, type HistogramCell } from './cells';
import { LATENCY_BUCKETS, type Metrics } from './metrics';

// Requests, their latency and the bytes they moved, counted once per request when its response ends.
// Labels are the route pattern (never the URL: no repository names or digests), the method and the status
// code. Each (route, method, code) gets its cells once (cells.ts): counting a request allocates nothing and
// costs a few map lookups and additions.

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
  duration: HistogramCell;
  byCode: Map<number, CountCell>;
}

/** Count every request of `app` on `metrics`. */
export function instrumentHttp(app: FastifyInstance, metrics: Metrics): void {
  const requests = new CellCounter(metrics, 'registry_http_requests_total', 'HTTP requests answered, by method, route pattern and status code', [
    'method',
    'route',
    'code',
  ]);
  const duration = new CellHistogram(
    metrics,
    'registry_http_request_duration_seconds',
    "Time from a request's arrival to the end of its response, by method and route pattern",
    LATENCY_BUCKETS,
  );
  const received = new CellCounter(metrics, 'registry_http_received_bytes_total', 'Bytes read from clients (request lines, headers and bodies), by protocol (v1, v2, other)', ['protocol']);
  const sent = new CellCounter(metrics, 'registry_http_sent_bytes_total', 'Bytes written to clients (status lines, headers and bodies), by protocol (v1, v2, other)', ['protocol']);
  const bytes = (protocol: Protocol) => ({ received: received.cell({ protocol }), sent: sent.cell({ protocol }) });
  const byProtocol: Record<Protocol, { received: CountCell; sent: CountCell }> = { v1: bytes('v1'), v2: bytes('v2'), other: bytes('other') };

  const routes = new Map<string, Map<string, MethodSeries>>();
  const seriesOf = (route: string, method: string): MethodSeries => {
    let byMethod = routes.get(route);
    if (!byMethod) routes.set(route, (byMethod = new Map()));
    let series = byMethod.get(method);
    if (!series) byMethod.set(method, (series = { duration: duration.cell({ method, route }), byCode: new Map() }));
    return series;
  };

  app.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: () => void) => {
    const route = request.routeLabel ?? request.routeOptions.url ?? UNMATCHED;
    const series = seriesOf(route, request.method);
    const code = reply.statusCode;
    let count = series.byCode.get(code);
    if (!count) series.byCode.set(code, (count = requests.cell({ method: request.method, route, code: String(code) })));
    count.pending++;
    series.duration.observe(reply.elapsedTime / 1000);

    // With keep-alive, a socket's counters grow request after request: this one moved what they grew by
    // since the socket's previous response ended (HTTP/1.1 without pipelining: one request at a time).
    const socket = request.raw.socket as MeteredSocket | null;
    if (socket) {
      const cells = byProtocol[protocolOf(route === UNMATCHED ? request.url : route)];
      const read = socket.bytesRead;
      const written = socket.bytesWritten;
      cells.received.pending += read - (socket[READ_BEFORE] ?? 0);
      cells.sent.pending += written - (socket[WRITTEN_BEFORE] ?? 0);
      socket[READ_BEFORE] = read;
      socket[WRITTEN_BEFORE] = written;
    }
    done();
  });
}
