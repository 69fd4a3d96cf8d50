import type { IncomingMessage, Server, ServerResponse } from 'node:http';

// Records every HTTP exchange a registry server sees, from outside the app: a second 'request' listener
// on the node server observes method, URL, a few request headers and the final status without touching
// fastify. Used by the real-client tests to assert which protocol path a client took.

export interface Exchange {
  method: string;
  /** Path and query as sent. */
  url: string;
  /** URL path without the query. */
  path: string;
  query: URLSearchParams;
  status: number;
  /** Request Content-Length (undefined when absent, e.g. chunked). */
  contentLength?: number;
  chunked: boolean;
  /** Response Docker-Content-Digest, when set. */
  digest?: string;
  /** The whole response was handed to the OS (false: the connection closed first). */
  finished: boolean;
}

export interface RequestLog {
  all(): Exchange[];
  /** Exchanges from now on only. */
  clear(): void;
  /** Matching exchanges: method and a path regexp. */
  find(method: string, path: RegExp): Exchange[];
  /** One line per exchange ("METHOD url -> status"), for diagnostics. */
  text(): string;
}

export function recordRequests(server: Server): RequestLog {
  let log: Exchange[] = [];
  // Prepended, so the wrapper is in place before fastify can answer.
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    const parsed = new URL(url, 'http://x');
    const len = req.headers['content-length'];
    // fastify hands its headers to writeHead directly, where getHeader() cannot see them: read them there.
    let digest: unknown = undefined;
    const writeHead = res.writeHead;
    res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
      for (const a of args) {
        if (a && typeof a === 'object' && !Array.isArray(a)) {
          for (const [k, v] of Object.entries(a)) if (k.toLowerCase() === 'docker-content-digest') digest = v;
        }
      }
      return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
    } as typeof res.writeHead;
    // 'close' always fires, also when the client hangs up right after reading the last byte ('finish' may not).
    res.once('close', () => {
      digest ??= res.getHeader('docker-content-digest');
      log.push({
        method: req.method ?? '',
        url,
        path: parsed.pathname,
        query: parsed.searchParams,
        status: res.statusCode,
        contentLength: len === undefined ? undefined : Number(len),
        chunked: /chunked/i.test(String(req.headers['transfer-encoding'] ?? '')),
        digest: typeof digest === 'string' ? digest : undefined,
        finished: res.writableFinished,
      });
    });
  });
  return {
    all: () => [...log],
    clear: () => {
      log = [];
    },
    find: (method, path) => log.filter((e) => e.method === method && path.test(e.path)),
    text: () => log.map((e) => `${e.method} ${e.url} -> ${e.status}`).join('\n'),
  };
}
